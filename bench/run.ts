// `npm run bench`: the measurements that exist so far, printed as tables. See bench/README.md.
import { registryBench } from './registry'

console.log('Registry: wsDump and one keepalive tick (no sockets), microseconds, median of 101 rounds')
console.table(registryBench())
