import assert from 'node:assert/strict'
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import type { Browser, BrowserContext, Page } from 'playwright-core'
import { assertChromium, hasChromium, launchChromium } from '../helpers/chromium'
import { startExample, type Example } from './helpers'
import { reportedSetUp } from '../helpers/set-up'

// test-results/ is git-ignored.
const SCREENSHOTS = join(__dirname, '..', '..', 'test-results', 'e2e-browser')

interface Person {
  context: BrowserContext
  page: Page
  errors: string[]
}

describe('the example page in Chromium: two people chat', () => {
  let example: Example | undefined
  let browser: Browser | undefined
  const people: Person[] = []

  function ready (): { example: Example, browser: Browser } {
    assertChromium()
    assert.ok(example !== undefined && browser !== undefined, 'the before hook did not finish')
    return { example, browser }
  }

  async function open (name: string): Promise<Person> {
    const { example, browser } = ready()
    const context = await browser.newContext({ viewport: { width: 900, height: 640 } })
    const page = await context.newPage()
    page.setDefaultTimeout(10_000)
    const person: Person = { context, page, errors: [] }
    page.on('pageerror', (err) => { person.errors.push(`${name}: ${err.message}`) })
    page.on('console', (msg) => { if (msg.type() === 'error') person.errors.push(`${name}: console: ${msg.text()}`) })
    people.push(person)
    await page.goto(example.httpUrl)
    await page.getByLabel('Your name').fill(name)
    await page.getByRole('button', { name: 'Register' }).click()
    await page.locator('#status[data-state="registered"]').waitFor()
    assert.equal(await page.locator('#status').textContent(), `Registered as ${name}.`)
    return person
  }

  async function say (from: Person, to: string, text: string): Promise<void> {
    await from.page.getByLabel('To').fill(to)
    await from.page.getByLabel('Message').fill(text)
    await from.page.getByRole('button', { name: 'Send' }).click()
  }

  before(reportedSetUp(async () => {
    if (!hasChromium()) return
    example = await startExample()
    browser = await launchChromium()
    await mkdir(SCREENSHOTS, { recursive: true })
  }))

  after(async () => {
    for (const person of people) await person.context.close()
    await browser?.close()
    await example?.app.close()
  })

  test('alice and bob register in two contexts and exchange a message each way', async (t) => {
    const { example } = ready()
    const started = performance.now()
    const [alice, bob] = await Promise.all([open('alice'), open('bob')])
    t.diagnostic(`both pages loaded and registered in ${(performance.now() - started).toFixed(0)} ms`)
    assert.equal(example.app.wsDump().wscounter, 2)

    const hello = `Hello Bob! ☃ ${Date.now()}`
    let sentAt = performance.now()
    await say(alice, 'bob', hello)
    const atBob = bob.page.locator('#messages li.in', { hasText: hello })
    await atBob.waitFor()
    t.diagnostic(`alice → bob shown in ${(performance.now() - sentAt).toFixed(0)} ms`)
    assert.equal(await atBob.locator('.who').textContent(), 'alice → you')
    await alice.page.locator('#messages li.out .state[data-state="delivered"]').waitFor()

    const reply = 'Hi Alice, got it.'
    sentAt = performance.now()
    await say(bob, 'alice', reply)
    const atAlice = alice.page.locator('#messages li.in', { hasText: reply })
    await atAlice.waitFor()
    t.diagnostic(`bob → alice shown in ${(performance.now() - sentAt).toFixed(0)} ms`)
    assert.equal(await atAlice.locator('.who').textContent(), 'bob → you')
    await bob.page.locator('#messages li.out .state[data-state="delivered"]').waitFor()

    await alice.page.screenshot({ path: join(SCREENSHOTS, 'alice.png'), fullPage: true })
    await bob.page.screenshot({ path: join(SCREENSHOTS, 'bob.png'), fullPage: true })
    t.diagnostic(`screenshots in ${SCREENSHOTS}`)
    assert.deepEqual([...alice.errors, ...bob.errors], [])
  })

  test('a message to someone not registered shows as not delivered (404)', async () => {
    ready()
    const alice = people[0]
    assert.ok(alice !== undefined, 'alice\'s page is open (the test before opened it)')
    await say(alice, 'nobody', 'is anyone there?')
    const state = alice.page.locator('#messages li.out', { hasText: 'is anyone there?' }).locator('.state[data-state="failed"]')
    await state.waitFor()
    assert.equal(await state.textContent(), 'not delivered: 404 Not Found')
  })
})
