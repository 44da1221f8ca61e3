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

/** The header cells of the markdown table under `heading`. */
function tableHeader (output: string, heading: string): string[] {
  const lines = output.slice(output.indexOf(heading)).split('\n')
  return (lines.find((l) => l.startsWith('|')) ?? '').split('|').slice(1, -1).map((c) => c.trim())
}

const leading = (cell: string): number => Number(cell.split(' ')[0].replace(/,/g, ''))

test('bench smoke run: every target answers every measure', { timeout: 240_000 }, async () => {
  const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', join(ROOT, 'bench/run.ts'), '--smoke'], { cwd: ROOT, timeout: 230_000, maxBuffer: 4 * 1024 * 1024 })
  assert.doesNotMatch(stdout, /^ {2}! /m, 'a load command failed')
  // Kamailio is a target wherever .ci/run installed it; a machine without it still checks the Node targets.
  const withK = (names: string[]): string[] => /Target K skipped/.test(stdout) ? names : [...names, 'K']
  const measures: Array<[string, string[]]> = [
    ['### Round trips, 1 connection, one core', ['A', 'A-async', 'B', 'C', 'C-copy']],
    ['### Round trips, 5 connections, one core', ['A', 'A-async', 'B', 'C', 'C-copy']],
    ['#### a bare OPTIONS', ['A', 'A-js', 'C', 'C-copy']],
    ['#### 4,096 bytes', ['A', 'A-js', 'C', 'C-copy']],
    ['### Handshakes', withK(['A', 'B', 'C', 'C-copy'])],
    ['### Round trips, 10 connections, whole machine', withK(['A', 'A2', 'C', 'C-copy'])]
  ]
  for (const [heading, targets] of measures) {
    const rows = tableAfter(stdout, heading)
    assert.deepEqual(rows.map((r) => r[0]), targets, heading)
    // Columns: target, per server CPU-second, vs ref, per second, ... — both figures come from answers; the
    // server's CPU per operation is split into user and system time.
    const header = tableHeader(stdout, heading)
    const user = header.findIndex((h) => h.startsWith('user µs per'))
    const system = header.findIndex((h) => h.startsWith('system µs per'))
    assert.ok(user > 0 && system === user + 1, `${heading}: no user and system columns: ${header.join(' | ')}`)
    for (const row of rows) {
      assert.ok(leading(row[1]) > 0 && leading(row[3]) > 0, `${heading}: ${row[0]} did nothing: ${row.join(' | ')}`)
      assert.ok(leading(row[user]) + leading(row[system]) > 0, `${heading}: ${row[0]} used no CPU: ${row.join(' | ')}`)
    }
  }
  // The storm: every client of each target open, none failed.
  const storm = tableAfter(stdout, '### Reconnect storm')
  assert.deepEqual(storm.map((r) => r[0]), withK(['A']))
  for (const row of storm) {
    assert.equal(leading(row[1]), 200, `storm: ${row.join(' | ')}`)
    assert.equal(leading(row[row.length - 1]), 0, `storm failures: ${row.join(' | ')}`)
  }
  const idle = tableAfter(stdout, '### Memory per idle connection')
  assert.deepEqual(idle.map((r) => r[0]), withK(['A', 'B', 'C', 'C-copy']))
  for (const row of idle) assert.ok(Number.isFinite(leading(row[1])), `idle: ${row.join(' | ')}`)
  const lwsc = tableAfter(stdout, '### lwsc:')
  assert.equal(lwsc.length, 4)
  for (const row of lwsc) assert.ok(leading(row[1]) > 0, `lwsc: ${row.join(' | ')}`)
  // Every socket measure prints its control's noise floor, and the load the machine had meanwhile.
  assert.ok((stdout.match(/^Noise floor: per server CPU-second ±[\d.]+% \(C-copy\/C .*Load average \(1, 5, 15 min\) before: [\d.]+ /gm) ?? []).length >= 6, 'a measure without its noise floor or load')
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
