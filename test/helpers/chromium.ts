import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { chromium, type Browser } from 'playwright-core'
import { installCommand } from './system-packages'

/** Debian's Chromium: tests never download a browser. */
export const CHROMIUM = '/usr/bin/chromium'

/** Never a skip: a missing browser is a broken test machine, and each test fails saying how to fix it. */
export function assertChromium (): void {
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing. Install Debian's Chromium with the rest of what the suite needs: ${installCommand()}`)
}

export const hasChromium = (): boolean => existsSync(CHROMIUM)

/**
 * Headless Chromium with nothing that talks to the network on its own. `hostRules` is Chromium's
 * `--host-resolver-rules` ("MAP evil.test 127.0.0.1"), to give a page a name of its own without DNS.
 * A fake microphone that needs no permission prompt lets a page call, and ICE candidates carry no mDNS
 * host names, so WebRTC sends nothing to the LAN's multicast group.
 */
export async function launchChromium (hostRules?: string): Promise<Browser> {
  const args = [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream',
    '--disable-features=WebRtcHideLocalIpsWithMdns'
  ]
  if (hostRules !== undefined) args.push(`--host-resolver-rules=${hostRules}`)
  return await chromium.launch({ executablePath: CHROMIUM, args })
}
