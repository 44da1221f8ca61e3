import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'

/** The Debian packages the suite runs against: the list `.ci/run` installs from. */
export const DEBIAN_PACKAGES: readonly string[] = readFileSync(join(__dirname, '../../.ci/debian-packages'), 'utf8')
  .split('\n').map((line) => line.trim()).filter((line) => line !== '' && !line.startsWith('#'))

/** Those not installed, as dpkg sees them; every one of them when dpkg itself is missing. */
export function missingPackages (packages: readonly string[] = DEBIAN_PACKAGES): string[] {
  let status: string
  try {
    status = execFileSync('dpkg-query', ['-W', '-f=${Package} ${Status}\\n', ...packages], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })
  } catch (err) {
    // dpkg-query exits 1 when a package is unknown, and still prints the known ones.
    status = (err as { stdout?: string }).stdout ?? ''
  }
  const installed = new Set(status.split('\n').filter((line) => line.endsWith(' install ok installed')).map((line) => line.split(' ')[0]))
  return packages.filter((pkg) => !installed.has(pkg))
}

/** What to run for `packages`, or for the whole list. */
export function installCommand (packages: readonly string[] = DEBIAN_PACKAGES): string {
  return `sudo apt-get update && sudo apt-get install -y ${packages.join(' ')} (or npm run test:all, which installs whatever is missing and runs npm test)`
}
