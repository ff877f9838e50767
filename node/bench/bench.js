'use strict'
// The Node package next to the original ac-redislock and node-redlock, on one private
// redis-server: lock + release pairs per second from 1 and from 50 concurrent callers (each
// on keys of its own, one client per implementation), and one key contended by 8 workers
// (each with its own client and connection): acquisitions per second and takeover latency,
// the time from the holder calling release to the next waiter holding the lock.
//
//   npm run build && npm run bench                 # the original as "raw ioredis" (see below)
//   AC_REDISLOCK_ORIGINAL=/path/to/ac-redislock npm run bench   # the original's own index.js
//
// The original: with AC_REDISLOCK_ORIGINAL (a checkout or a bare git directory of
// AdmiralCloud/ac-redislock), its index.js is copied into a temporary folder and its runtime
// dependencies (node-cache, ac-custom-error) are installed there from the npm registry; nothing
// of it is kept. Without it, "original (raw ioredis)" sends exactly what the original sends:
// SET key value EX n NX; GET then DEL.
// BENCH_SECONDS (default 2) sets each measurement's length, BENCH_ROUNDS (default 5) the rounds
// of the uncontended part (medians are printed).
const { execFileSync } = require('node:child_process')
const { randomUUID } = require('node:crypto')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const Redis = require('ioredis')
const Redlock = require('redlock')
const redisLock = require('..')
const { startRedis } = require('../test/support/redis')

const SECONDS = Number(process.env.BENCH_SECONDS || 2)
const ROUNDS = Number(process.env.BENCH_ROUNDS || 5)
const CONTENDERS = 8
const quiet = { log () {}, info () {}, warn () {}, error () {}, debug () {} }

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length ? s[Math.floor((s.length - 1) / 2)] : NaN
}
const quantile = (xs, q) => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length ? s[Math.min(s.length - 1, Math.floor(q * s.length))] : NaN
}
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

/** The original's index.js with its runtime dependencies, in a temporary folder; or null. */
function loadOriginal () {
  const src = process.env.AC_REDISLOCK_ORIGINAL
  if (!src) return null
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'acrl-original-'))
  if (fs.existsSync(path.join(src, 'index.js'))) {
    fs.copyFileSync(path.join(src, 'index.js'), path.join(dir, 'index.js'))
    fs.copyFileSync(path.join(src, 'package.json'), path.join(dir, 'package.json.original'))
  } else {
    const files = execFileSync('git', ['--git-dir', src, 'archive', 'HEAD', 'index.js', 'package.json'])
    execFileSync('tar', ['-x', '-C', dir], { input: files })
    fs.renameSync(path.join(dir, 'package.json'), path.join(dir, 'package.json.original'))
  }
  const pkg = JSON.parse(fs.readFileSync(path.join(dir, 'package.json.original'), 'utf8'))
  const deps = ['node-cache', 'ac-custom-error'].map((n) => `${n}@${pkg.dependencies[n] || 'latest'}`)
  fs.writeFileSync(path.join(dir, 'package.json'), '{"name":"acrl-original-bench","private":true}')
  const npm = (names) => execFileSync('npm', ['install', '--no-audit', '--no-fund', '--loglevel=silent', ...names], { cwd: dir, stdio: 'ignore' })
  let note = deps.join(', ')
  try {
    npm(deps)
  } catch {
    // The registry reached may lack the newest patch versions (ac-custom-error 2.0.7 and up;
    // its index.js is the same from 2.0.5 on): take the newest it has.
    const names = ['node-cache', 'ac-custom-error']
    npm(names)
    note = names.map((n) => `${n}@${require(path.join(dir, 'node_modules', n, 'package.json')).version}`).join(', ')
  }
  process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }))
  return { module: require(path.join(dir, 'index.js')), version: pkg.version, note }
}

/** What the original sends, for when its code is not at hand. */
function rawOriginal (client) {
  return {
    async init () {},
    async lockKey ({ redisKey, expires = 10, value = randomUUID() }) {
      if ((await client.set(redisKey, value, 'EX', expires, 'NX')) === 'OK') return value
      const err = new Error('resource_locked')
      err.code = 423
      throw err
    },
    async releaseLock ({ redisKey, value }) {
      if (value && (await client.get(redisKey)) !== value) throw new Error('releaseLock_valueMismatch')
      await client.del(redisKey)
    }
  }
}

/**
 * The implementations, each a factory of "lockers": `{ pair(key), contend(key), close() }`.
 * `pair` locks and releases once (uncontended); `contend` takes the key waiting as the library
 * lets one wait, and resolves to a release function.
 */
function implementations (server, original) {
  return [
    {
      name: 'ac-redislock-node (lockKey + releaseLock)',
      contendedName: 'ac-redislock-node (acquire, waiting)',
      async make () {
        const inst = redisLock.create()
        await inst.init({ redis: server.url, logger: quiet })
        return {
          async pair (key) {
            const value = await inst.lockKey({ redisKey: key })
            await inst.releaseLock({ redisKey: key, value })
          },
          async contend (key) {
            const lease = await inst.acquire(key, { wait: 30000 })
            return () => lease.release()
          },
          close: () => inst.close()
        }
      }
    },
    {
      name: 'ac-redislock-node (acquire + release)',
      async make () {
        const inst = redisLock.create()
        await inst.init({ redis: server.url, logger: quiet })
        return {
          async pair (key) {
            const lease = await inst.acquire(key, { wait: 0 })
            await lease.release()
          },
          contend: null,
          close: () => inst.close()
        }
      }
    },
    {
      name: original ? `original ac-redislock ${original.version}` : 'original (raw ioredis)',
      contendedName: original ? `original ${original.version} (lockKey spin)` : 'original, raw (lockKey spin)',
      async make () {
        const client = new Redis(server.port, '127.0.0.1')
        const inst = original ? original.module.create() : rawOriginal(client)
        await inst.init({ redis: client })
        return {
          async pair (key) {
            const value = await inst.lockKey({ redisKey: key })
            await inst.releaseLock({ redisKey: key, value })
          },
          // The original cannot wait: its users try again. Here: at once, no sleep (a spin).
          async contend (key) {
            for (;;) {
              try {
                const value = await inst.lockKey({ redisKey: key })
                return () => inst.releaseLock({ redisKey: key, value })
              } catch (err) {
                if (err.code !== 423) throw err
              }
            }
          },
          close: async () => client.disconnect()
        }
      }
    },
    {
      name: 'node-redlock 4 (one node)',
      contendedName: 'node-redlock 4 (retry every 10 ms)',
      async make () {
        const client = new Redis(server.port, '127.0.0.1')
        const uncontended = new Redlock([client], { retryCount: 0 })
        const waiting = new Redlock([client], { retryCount: -1, retryDelay: 10, retryJitter: 5 })
        return {
          async pair (key) {
            const lock = await uncontended.lock(key, 10000)
            await lock.unlock()
          },
          async contend (key) {
            const lock = await waiting.lock(key, 10000)
            return () => lock.unlock()
          },
          close: async () => client.disconnect()
        }
      }
    }
  ]
}

/** CPU time (µs) redis-server `pid` has used, from /proc (Linux); NaN elsewhere. */
function serverCpu (pid) {
  try {
    const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')
    return (Number(fields[11]) + Number(fields[12])) * (1e6 / 100) // clock ticks, USER_HZ 100
  } catch {
    return NaN
  }
}

let serverPid
const cpu = { client: new Map(), server: new Map() }

/** Pairs per second from `concurrency` callers on one locker, each on 16 keys of its own. */
async function uncontended (locker, concurrency, name) {
  const prefix = `bench:${randomUUID()}`
  const deadline = performance.now() + SECONDS * 1000
  let pairs = 0
  const cpu0 = process.cpuUsage()
  const server0 = serverCpu(serverPid)
  const started = performance.now()
  await Promise.all(Array.from({ length: concurrency }, async (_, c) => {
    let i = 0
    while (performance.now() < deadline) {
      await locker.pair(`${prefix}:${c}:${i++ % 16}`)
      pairs++
    }
  }))
  const rate = pairs / ((performance.now() - started) / 1000)
  if (name && concurrency === 50) {
    const used = process.cpuUsage(cpu0)
    for (const [map, value] of [[cpu.client, (used.user + used.system) / pairs], [cpu.server, (serverCpu(serverPid) - server0) / pairs]]) {
      if (!map.has(name)) map.set(name, [])
      map.get(name).push(value)
    }
  }
  return rate
}

/** One key, 8 workers with a locker each: acquisitions/s and takeover latencies (ms). */
async function contended (lockers) {
  const key = `bench:contended:${randomUUID()}`
  const deadline = performance.now() + SECONDS * 1000
  let releaseStarted = null
  let lastHolder = -1
  let again = 0
  const takeovers = []
  let grants = 0
  const started = performance.now()
  await Promise.all(lockers.map(async (locker, id) => {
    while (performance.now() < deadline) {
      const release = await locker.contend(key)
      const now = performance.now()
      if (releaseStarted !== null) takeovers.push(now - releaseStarted)
      if (id === lastHolder) again++
      lastHolder = id
      grants++
      releaseStarted = performance.now()
      await release()
    }
  }))
  return { rate: grants / ((performance.now() - started) / 1000), takeovers, again: again / grants }
}

const fmt = (n, digits = 0) => Number.isFinite(n) ? n.toFixed(digits).replace(/\B(?=(\d{3})+(?!\d))/g, ',') : 'n/a'

async function main () {
  const server = await startRedis()
  serverPid = server.child.pid
  const original = loadOriginal()
  const impls = implementations(server, original)
  const version = execFileSync('redis-server', ['--version'], { encoding: 'utf8' }).trim().split(' ')[2]
  console.log(`Node ${process.version}, redis-server ${version} (private, port ${server.port}), ` +
    `${os.cpus().length} CPUs (${os.cpus()[0].model.trim()}), ${SECONDS} s per measurement, ` +
    `${ROUNDS} rounds uncontended (median), addon: ${fs.existsSync(path.join(__dirname, '..', 'ac_redislock_node.node')) ? 'built' : 'missing'}`)
  console.log(`The original: ${original ? `its own index.js (v${original.version}), with ${original.note} from npm` : 'raw ioredis doing what it sends (AC_REDISLOCK_ORIGINAL not set)'}`)

  // Uncontended: rounds interleave the implementations, so drift between rounds hits all.
  const results = new Map(impls.map((impl) => [impl.name, { 1: [], 50: [] }]))
  const lockers = new Map()
  for (const impl of impls) lockers.set(impl.name, await impl.make())
  for (const impl of impls) await uncontended(lockers.get(impl.name), 50) // warm-up
  for (let round = 0; round < ROUNDS; round++) {
    const order = round % 2 ? [...impls].reverse() : impls
    for (const concurrency of [1, 50]) {
      for (const impl of order) {
        results.get(impl.name)[concurrency].push(await uncontended(lockers.get(impl.name), concurrency, impl.name))
      }
    }
  }
  for (const locker of lockers.values()) await locker.close()

  console.log('\nUncontended lock + release pairs/s (median of rounds); CPU per pair at 50 callers: this process (client) and redis-server')
  console.log(`${'implementation'.padEnd(44)} ${'1 caller'.padStart(10)} ${'50 callers'.padStart(11)} ${'ratio'.padStart(7)} ${'client CPU'.padStart(11)} ${'server CPU'.padStart(11)}`)
  const base = results.get(impls[2].name)
  for (const impl of impls) {
    const r = results.get(impl.name)
    const ratio = median(r[50]) / median(base[50])
    const us = (map) => `${fmt(median(map.get(impl.name) || []), 1)} µs`
    console.log(`${impl.name.padEnd(44)} ${fmt(median(r[1])).padStart(10)} ${fmt(median(r[50])).padStart(11)} ${(fmt(ratio, 2) + 'x').padStart(7)} ${us(cpu.client).padStart(11)} ${us(cpu.server).padStart(11)}`)
  }

  console.log(`\nContended: one key, ${CONTENDERS} workers with a client each, hold ~0 ms`)
  console.log(`${'implementation'.padEnd(44)} ${'acq/s'.padStart(8)} ${'takeover p50'.padStart(13)} ${'p90'.padStart(8)} ${'p99'.padStart(8)} ${'same worker again'.padStart(18)}`)
  const contendedResults = {}
  for (const impl of impls.filter((i) => i.name !== impls[1].name)) {
    const ls = []
    for (let i = 0; i < CONTENDERS; i++) ls.push(await impl.make())
    const { rate, takeovers, again } = await contended(ls)
    for (const l of ls) await l.close()
    contendedResults[impl.name] = { rate, takeovers }
    console.log(`${(impl.contendedName || impl.name).padEnd(44)} ${fmt(rate).padStart(8)} ${(fmt(median(takeovers), 3) + ' ms').padStart(13)} ${(fmt(quantile(takeovers, 0.9), 2) + ' ms').padStart(8)} ${(fmt(quantile(takeovers, 0.99), 2) + ' ms').padStart(8)} ${(fmt(100 * again, 0) + '%').padStart(18)}`)
    await sleep(100)
  }

  // The goal's ratio: per round (the two ran back to back), then the median, so drift between
  // rounds cancels out of it.
  const ours = results.get(impls[0].name)[50]
  const ratio = median(ours.map((x, i) => x / base[50][i]))
  const takeover = median(contendedResults[impls[0].name].takeovers)
  console.log('\nGoals (issue 18)')
  console.log(`- at least 2x the original's pairs/s at 50 concurrent (median of per-round ratios ${ours.map((x, i) => fmt(x / base[50][i], 2)).join(', ')}): ${fmt(ratio, 2)}x -> ${ratio >= 2 ? 'met' : 'MISSED'}`)
  console.log(`- takeover under 1 ms (median, ${CONTENDERS} workers): ${fmt(takeover, 3)} ms -> ${takeover < 1 ? 'met' : 'MISSED'}`)
  await server.stop()
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
