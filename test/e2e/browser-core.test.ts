import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import type { Browser } from 'playwright-core'
import { SIPP, SIPP_HINT, sippPassed } from '../helpers/sipp'
import { assertChromium, launchChromium } from '../helpers/chromium'
import { registeredPhone, startEdgeWithCore, type EdgeWithCore } from './sip-core'
import { reportedSetUp } from '../helpers/set-up'

// test-results/ is git-ignored.
const SCREENSHOTS = join(__dirname, '..', '..', 'test-results', 'e2e-browser')

describe('the example page in Chromium, through the edge to a phone behind a Kamailio core', () => {
  let edge: EdgeWithCore | undefined
  let browser: Browser | undefined

  before(reportedSetUp(async () => {
    assertChromium()
    assert.ok(existsSync(SIPP), SIPP_HINT)
    edge = await startEdgeWithCore('udp')
    browser = await launchChromium()
    await mkdir(SCREENSHOTS, { recursive: true })
  }))

  after(async () => {
    await browser?.close()
    await edge?.close()
  })

  test('ivan registers on the page and calls a sipp phone: INVITE, 200, ACK, then BYE from the page', async (t) => {
    assert.ok(edge !== undefined && browser !== undefined, 'the before hook did not finish')
    const phone = await registeredPhone(edge.coreAddress, 'uas-answer.xml', 'phone')
    const context = await browser.newContext()
    try {
      const page = await context.newPage()
      page.setDefaultTimeout(15_000)
      const errors: string[] = []
      page.on('pageerror', (err) => { errors.push(err.message) })
      await page.goto(edge.example.httpUrl)
      await page.getByLabel('Your name').fill('ivan')
      await page.getByRole('button', { name: 'Register' }).click()
      await page.locator('#status[data-state="registered"]').waitFor()

      await page.getByLabel('To').fill('phone')
      const started = performance.now()
      await page.getByRole('button', { name: 'Call' }).click()
      await page.locator('#call-status[data-state="in-call"]').waitFor()
      t.diagnostic(`Call clicked → in call (200 and ACK) in ${(performance.now() - started).toFixed(0)} ms`)
      assert.equal(await page.locator('#call-status').textContent(), 'In a call with phone.')
      await page.screenshot({ path: join(SCREENSHOTS, 'ivan-in-call.png'), fullPage: true })

      await page.getByRole('button', { name: 'Hang up' }).click()
      await page.locator('#call-status[data-state="ended"]').waitFor()
      assert.equal(await page.locator('#call-status').textContent(), 'Call with phone ended (you hung up).')
      await sippPassed(phone, 'uas-answer.xml')
      assert.deepEqual(errors, [])
    } finally {
      await context.close()
      await phone.stop()
    }
  })
})
