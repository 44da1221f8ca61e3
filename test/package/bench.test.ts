// `npm run bench -- --smoke`: every target and every measure of the bench, with tiny numbers, so the bench
// cannot rot between runs. It checks that each target really answered, not how fast (that is the bench's
// job, never a unit test's).
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { join } from 'node:path'
import { test } from 'node:test'
import { promisify } from 'node:util'

const ROOT = join(__dirname, '..', '..')

/** The rows of the markdown table under `heading`, as cells. */
function tableAfter (output: string, heading: string): string[][] {
  const start = output.indexOf(heading)
  assert.notEqual(start, -1, `no "${heading}" in:\n${output}`)
  const lines = output.slice(start).split('\n')
  const first = lines.findIndex((l) => l.startsWith('|'))
  const rows: string[][] = []
  for (const line of lines.slice(first + 2)) {
    if (!line.startsWith('|')) break
    rows.push(line.split('|').slice(1, -1).map((c) => c.trim()))
  }
  return rows
}

const leading = (cell: string): number => Number(cell.split(' ')[0].replace(/,/g, ''))

test('bench smoke run: every target answers every measure', { timeout: 240_000 }, async () => {
  const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', join(ROOT, 'bench/run.ts'), '--smoke'], { cwd: ROOT, timeout: 230_000, maxBuffer: 4 * 1024 * 1024 })
  assert.doesNotMatch(stdout, /^ {2}! /m, 'a load command failed')
  // Kamailio is a target wherever .ci/run installed it; a machine without it still checks the Node targets.
  const withK = (names: string[]): string[] => /Target K skipped/.test(stdout) ? names : [...names, 'K']
  const measures: Array<[string, string[]]> = [
    ['### Round trips, 1 connection, one core', withK(['A', 'A-copy', 'A-async', 'B', 'C'])],
    ['### Round trips, 5 connections, one core', withK(['A', 'A-copy', 'A-async', 'B', 'C'])],
    ['#### a bare OPTIONS', ['A', 'A-copy', 'A-js', 'C']],
    ['#### 4,096 bytes', ['A', 'A-copy', 'A-js', 'C']],
    ['### Handshakes', withK(['A', 'A-copy', 'B', 'C'])],
    ['### Round trips, 10 connections, whole machine', withK(['A', 'A-copy', 'A2'])]
  ]
  for (const [heading, targets] of measures) {
    const rows = tableAfter(stdout, heading)
    assert.deepEqual(rows.map((r) => r[0]), targets, heading)
    // Columns: target, per server CPU-second, vs ref, per second, ... — both figures come from answers.
    for (const row of rows) assert.ok(leading(row[1]) > 0 && leading(row[3]) > 0, `${heading}: ${row[0]} did nothing: ${row.join(' | ')}`)
  }
  const idle = tableAfter(stdout, '### Memory per idle connection')
  assert.deepEqual(idle.map((r) => r[0]), withK(['A', 'A-copy', 'B', 'C']))
  for (const row of idle) assert.ok(Number.isFinite(leading(row[1])), `idle: ${row.join(' | ')}`)
  const lwsc = tableAfter(stdout, '### lwsc:')
  assert.equal(lwsc.length, 4)
  for (const row of lwsc) assert.ok(leading(row[1]) > 0, `lwsc: ${row.join(' | ')}`)
  // Every socket measure prints its control's noise floor.
  assert.ok((stdout.match(/^Noise floor: per server CPU-second ±[\d.]+% \(A-copy\/A /gm) ?? []).length >= 6, 'a measure without its noise floor')
  // Cluster mode: every path of bench/cluster.ts delivered everything, and the failure figures were taken.
  const cluster = stdout.split('\n').filter((line) => /^\| (local|cross-node|socket\.io)/.test(line))
  assert.equal(cluster.length, 6, 'cluster tables')
  for (const row of cluster) {
    const cells = row.split('|').map((c) => c.trim())
    assert.ok(leading(cells[2]) > 0, `cluster: nothing arrived: ${row}`)
    assert.match(cells[3], /^100\.0%/, `cluster: lost messages: ${row}`)
  }
  assert.match(stdout, /Redis deliveries per cross-node send, with 3 nodes each: ours 1 .* socket\.io's adapter 3 /)
  assert.match(stdout, /A SIGKILLed node is known gone after \d+ ms/)
  assert.match(stdout, /After Redis restarts, cross-node sends arrive again after \d+ ms/)
  assert.match(stdout, /Projection: 1,000,000 connections over 20 nodes/)
  const goals = tableAfter(stdout, '### Goals')
  assert.ok(goals.length >= 9, `goals: ${goals.length}`)
  for (const row of goals) assert.match(row[4], /^(pass|\*\*miss\*\*|within noise)$/)
})
