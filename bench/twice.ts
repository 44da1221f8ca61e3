/**
 * `npm run bench -- --twice`: two full runs back to back, each printed as it goes, then every goal's verdict
 * side by side and whether they all agreed — the check that the bench's verdicts hold. Resolves with the
 * exit code: 0 when every verdict agreed, 1 otherwise.
 */
import { spawn } from 'node:child_process'
import { join } from 'node:path'

/** The goal rows of one run's output: goal text → verdict. */
export function verdicts (output: string): Map<string, string> {
  const rows = new Map<string, string>()
  const start = output.indexOf('### Goals')
  if (start === -1) return rows
  for (const line of output.slice(start).split('\n')) {
    if (!line.startsWith('| ') || line.startsWith('| goal ')) continue
    const cells = line.split('|').slice(1, -1).map((c) => c.trim())
    rows.set(cells[0], cells[cells.length - 1])
  }
  return rows
}

async function oneRun (args: string[]): Promise<string> {
  return await new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', join(__dirname, 'run.ts'), ...args], { stdio: ['ignore', 'pipe', 'inherit'] })
    let output = ''
    child.stdout.on('data', (chunk: Buffer) => { output += chunk.toString(); process.stdout.write(chunk) })
    child.once('error', reject)
    child.once('exit', (code) => { code === 0 ? resolve(output) : reject(new Error(`bench run exited with ${String(code)}`)) })
  })
}

export async function twice (args: string[]): Promise<number> {
  const runs: Array<Map<string, string>> = []
  for (let i = 1; i <= 2; i++) {
    process.stdout.write(`\n## Run ${i} of 2\n\n`)
    runs.push(verdicts(await oneRun(args)))
  }
  const names = [...new Set([...runs[0].keys(), ...runs[1].keys()])]
  const differ = names.filter((n) => runs[0].get(n) !== runs[1].get(n))
  process.stdout.write('\n## Verdicts of the two runs\n\n| goal | run 1 | run 2 | agree |\n|---|---|---|---|\n')
  for (const n of names) process.stdout.write(`| ${n} | ${runs[0].get(n) ?? '—'} | ${runs[1].get(n) ?? '—'} | ${differ.includes(n) ? '**no**' : 'yes'} |\n`)
  process.stdout.write(differ.length === 0
    ? `\nAll ${names.length} verdicts agreed.\n`
    : `\n${differ.length} of ${names.length} verdicts differ: ${differ.join('; ')}.\n`)
  return differ.length === 0 ? 0 : 1
}
