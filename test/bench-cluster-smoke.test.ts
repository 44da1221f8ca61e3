// `npm run bench:cluster -- --smoke`: every path of the cluster bench with tiny numbers, so it cannot rot
// between runs. It checks that each path really delivered, never how fast (that is the bench's job).
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { join } from 'node:path'
import { test } from 'node:test'
import { promisify } from 'node:util'

const ROOT = join(__dirname, '..')

test('cluster bench smoke run: every path delivers, and the failure figures are measured', { timeout: 180_000 }, async () => {
  const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', join(ROOT, 'bench/cluster.ts'), '--smoke'], { cwd: ROOT, timeout: 170_000, maxBuffer: 4 * 1024 * 1024 })
  const rows = stdout.split('\n').filter((line) => /^\| (local|cross-node|socket\.io)/.test(line))
  assert.equal(rows.length, 6, stdout)
  for (const row of rows) {
    const cells = row.split('|').map((c) => c.trim())
    assert.ok(Number(cells[2].split(' ')[0]) > 0, `nothing arrived: ${row}`)
    assert.match(cells[3], /^100\.0%/, `lost messages: ${row}`)
  }
  assert.match(stdout, /Redis deliveries per cross-node send, with 3 nodes each: ours 1 .* socket\.io's adapter 3 /)
  assert.match(stdout, /A SIGKILLed node is known gone after \d+ ms/)
  assert.match(stdout, /After Redis restarts, cross-node sends arrive again after \d+ ms/)
  assert.match(stdout, /Projection: 1,000,000 connections over 20 nodes/)
})
