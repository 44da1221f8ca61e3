import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import type { Browser, Page } from 'playwright-core'
import { BARESIP, BARESIP_HINT, startBaresip, type Softphone } from '../helpers/baresip'
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

describe('the example page in Chromium and a real softphone (baresip) behind the core, each calling the other', () => {
  let edge: EdgeWithCore | undefined
  let browser: Browser | undefined
  let phone: Softphone | undefined
  let desk: Softphone | undefined

  before(reportedSetUp(async () => {
    assertChromium()
    assert.ok(existsSync(BARESIP), BARESIP_HINT)
    edge = await startEdgeWithCore('udp')
    phone = await startBaresip({ user: 'phone', registrar: edge.coreAddress })
    desk = await startBaresip({ user: 'desk', registrar: edge.coreAddress, answer: 'manual' })
    browser = await launchChromium()
  }))

  after(async () => {
    await browser?.close()
    await phone?.stop()
    await desk?.stop()
    await edge?.close()
  })

  /** A page registered as `user`, its errors collected. */
  async function registeredPage (user: string): Promise<{ page: Page, errors: string[], close: () => Promise<void> }> {
    assert.ok(edge !== undefined && browser !== undefined, 'the before hook did not finish')
    const context = await browser.newContext()
    const page = await context.newPage()
    page.setDefaultTimeout(15_000)
    const errors: string[] = []
    page.on('pageerror', (err) => { errors.push(err.message) })
    await page.goto(edge.example.httpUrl)
    await page.getByLabel('Your name').fill(user)
    await page.getByRole('button', { name: 'Register' }).click()
    await page.locator('#status[data-state="registered"]').waitFor()
    return { page, errors, close: async () => { await context.close() } }
  }

  test('judy calls the softphone; it holds and resumes (re-INVITEs to the browser); judy hangs up', async () => {
    assert.ok(phone !== undefined)
    const { page, errors, close } = await registeredPage('judy')
    try {
      await page.getByLabel('To').fill('phone')
      await page.getByRole('button', { name: 'Call' }).click()
      await page.locator('#call-status[data-state="in-call"]').waitFor()
      await phone.event('CALL_ESTABLISHED')
      // Each re-INVITE's offer answered by the browser: baresip reports the SDP answer it got.
      const answered = async (): Promise<void> => { await phone?.event('CALL_REMOTE_SDP', (e) => e.param === 'answer') }
      // Only an answer reported after each command counts: the resume waits for the hold's own.
      phone.forget('CALL_REMOTE_SDP')
      assert.equal((await phone.command('hold')).ok, true)
      await answered()
      phone.forget('CALL_REMOTE_SDP')
      assert.equal((await phone.command('resume')).ok, true)
      await answered()
      await page.getByRole('button', { name: 'Hang up' }).click()
      await page.locator('#call-status[data-state="ended"]').waitFor()
      assert.equal((await phone.event('CALL_CLOSED')).peeruri, 'sip:judy@127.0.0.1')
      assert.deepEqual(errors, [])
    } finally {
      await close()
    }
  })

  test('the softphone calls judy; she answers on the page; the softphone hangs up (its BYE ends the call on the page)', async () => {
    assert.ok(phone !== undefined)
    const { page, errors, close } = await registeredPage('judy')
    try {
      assert.equal((await phone.command('dial', 'sip:judy@127.0.0.1')).ok, true)
      await page.locator('#call-status[data-state="ringing"]').waitFor()
      await page.getByRole('button', { name: 'Answer' }).click()
      await page.locator('#call-status[data-state="in-call"]').waitFor()
      await phone.event('CALL_ESTABLISHED')
      assert.equal((await phone.command('hangup')).ok, true)
      await page.locator('#call-status[data-state="ended"]').waitFor()
      await phone.event('CALL_CLOSED')
      assert.deepEqual(errors, [])
    } finally {
      await close()
    }
  })

  test('CANCEL before answer, both ways: judy hangs up on a ringing desk phone; the desk phone gives up on judy', async () => {
    assert.ok(desk !== undefined)
    const { page, errors, close } = await registeredPage('judy')
    try {
      await page.getByLabel('To').fill('desk')
      await page.getByRole('button', { name: 'Call' }).click()
      await desk.event('CALL_INCOMING')
      await page.getByRole('button', { name: 'Hang up' }).click()
      await page.locator('#call-status[data-state="failed"]').waitFor()
      assert.match(await page.locator('#call-status').textContent() ?? '', /Canceled/)
      await desk.event('CALL_CLOSED')
      assert.equal((await desk.command('dial', 'sip:judy@127.0.0.1')).ok, true)
      await page.locator('#call-status[data-state="ringing"]').waitFor()
      assert.equal((await desk.command('hangup')).ok, true)
      await page.locator('#call-status[data-state="failed"]').waitFor()
      assert.match(await page.locator('#call-status').textContent() ?? '', /Canceled/)
      await desk.event('CALL_CLOSED')
      assert.deepEqual(errors, [])
    } finally {
      await close()
    }
  })
})
