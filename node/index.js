'use strict'
// ac-redislock-node: the API of the Node package ac-redislock (v6: init, lockKey, releaseLock,
// getLock, create) and a lease API (acquire, using), on the Rust crate ac-redislock through a
// napi-rs addon. This file checks arguments, maps errors and logs; the locks are the crate's.
const native = require('./lib/native')
const { ACError, ReplyError, fromNative } = require('./lib/errors')
const { connection } = require('./lib/redis-options')
const { Batcher } = require('./lib/batch')

const DEFAULT_EXPIRES = 10 // seconds, as the original
const DEFAULT_TTL = 10000 // ms, the lease API
const DEFAULT_WAIT = 10000 // ms

/** The original's key check (`if (!redisKey)`), and numbers taken as their text. */
function checkKey (redisKey, fn) {
  if (!redisKey) throw new ACError(`${fn}_redisKey_isRequired`)
  if (typeof redisKey === 'string') return redisKey
  if (typeof redisKey === 'number' || typeof redisKey === 'bigint') return String(redisKey)
  throw new ACError(`${fn}_redisKey_mustBeString`)
}

/**
 * `expires` in whole seconds, as the original sends it (`EX <expires>`), with the errors Redis
 * gives the original for what it refuses; here they come before anything is sent, and the
 * in-memory store refuses the same.
 */
function checkExpires (expires) {
  let n = expires
  if (typeof n === 'string' && /^[+-]?\d+$/.test(n.trim())) n = Number(n)
  if (typeof n !== 'number' || !Number.isSafeInteger(n)) {
    throw new ReplyError('ERR value is not an integer or out of range')
  }
  if (n <= 0) throw new ReplyError("ERR invalid expire time in 'set' command")
  return n
}

/** A lock value as its text: strings, and numbers and bigints as their text; else refused. */
function valueText (value, fn) {
  if (typeof value === 'string') return value
  if ((typeof value === 'number' && Number.isFinite(value)) || typeof value === 'bigint') return String(value)
  throw new ACError(`${fn}_value_mustBeString`)
}

/** A `logger[level](...)` that never throws and is skipped when the logger has no such level. */
function emit (logger, level, ...args) {
  const fn = logger && logger[level]
  if (typeof fn !== 'function') return
  try {
    fn.apply(logger, args)
  } catch {
    // A broken logger must not break a lock call.
  }
}

/** Milliseconds from the lease API's options: a finite number above zero (or 0 if allowed). */
function checkMs (ms, name, { zero = false } = {}) {
  if (typeof ms !== 'number' || !Number.isFinite(ms) || ms < 0 || (ms === 0 && !zero)) {
    throw new ACError(`acquire_${name}_invalid`, 400, `${name} must be a ${zero ? 'non-negative' : 'positive'} number of milliseconds`)
  }
  return ms
}

/**
 * A held lease (from `acquire`): `key`, `value`, `fencingToken`, `signal` (aborted when the
 * lease is lost, with the loss as its reason), `isHeld`, `remaining`, `extend(ttl)`, `release()`.
 */
class Lease {
  #native
  #controller
  #logger

  constructor (handle, logger) {
    this.#native = handle
    this.#logger = logger
    this.key = handle.key
    this.fencingToken = handle.fencingToken ?? null
  }

  /**
   * Aborted when the lease is lost (not when it is released). Made on first use: the watch
   * for the loss (a pending call into the addon) costs more than the rest of a lease, so a
   * lease whose signal nobody reads does not pay for it.
   */
  get signal () {
    if (!this.#controller) {
      this.#controller = new AbortController()
      this.#native.lost().then((reason) => {
        if (reason === 'released') return
        const err = new ACError('lease_lost', 410, `the lease on ${JSON.stringify(this.key)} ended: ${reason}`)
        err.lossReason = reason
        emit(this.#logger, 'warn', { message: 'lease_lost', redisKey: this.key, reason })
        this.#controller.abort(err)
      }, () => {})
    }
    return this.#controller.signal
  }

  /** The value the key holds while the lease lasts (a random token). */
  get value () {
    return this.#native.value
  }

  /** Whether the lease still holds, by the local monotonic clock minus the drift margin. */
  get isHeld () {
    return !(this.#controller && this.#controller.signal.aborted) && this.#native.isHeld
  }

  /** Milliseconds the lease has left (0 once it ended). */
  get remaining () {
    return this.#native.remainingMs
  }

  /** Sets the lease to `ttl` ms from now if the key still holds it; resolves to the ms left. */
  async extend (ttl = DEFAULT_TTL) {
    checkMs(ttl, 'ttl')
    try {
      return await this.#native.extend(ttl)
    } catch (err) {
      throw fromNative(err, 'lease')
    }
  }

  /** Releases the lock (atomic compare-and-delete; the next waiter gets it) and stops renewal. */
  async release () {
    try {
      await this.#native.release()
    } catch (err) {
      throw fromNative(err, 'lease')
    }
  }
}

function redisLock () {
  let client // the addon's Client; none before init
  let batch // its Batcher, for the seed calls
  let initialized = false
  let logger = console
  let logLevel = 'log'
  let logAttempts = false
  let suppressMismatch = false

  function ready (fn) {
    if (!client) throw new ACError(`${fn}_notInitialized`, -1, 'call init() first')
    return client
  }

  function batcher (fn) {
    ready(fn)
    return batch
  }

  /**
   * Sets the instance up, once (the README's "init once"; `reInit: true` sets it up again).
   * `redis`: an ioredis or node-redis client, or a URL; none means the in-memory store.
   */
  const init = async (params = {}) => {
    const {
      reInit,
      redis,
      logger: loggerInstance,
      logLevel: logLevelValue,
      suppressMismatch: suppressMismatchValue = false
    } = params || {}
    if (initialized && !reInit) return
    const nextLogger = loggerInstance || console
    const options = { suppressMismatch: Boolean(suppressMismatchValue) }
    let next
    if (redis) {
      const { url, options: more } = connection(redis)
      next = await native.connect(url, { ...options, ...more }).catch((err) => {
        throw fromNative(err, 'init')
      })
    } else {
      next = native.inMemory(options)
    }
    const previous = client
    client = next
    batch = new Batcher(next)
    initialized = true
    logger = nextLogger
    logLevel = logLevelValue || 'log'
    // Each lock attempt is logged when a logger or a level was asked for; with neither, the
    // instance logs only errors and warnings, as the original v6 prints nothing per lock.
    logAttempts = Boolean(loggerInstance || logLevelValue)
    suppressMismatch = Boolean(suppressMismatchValue)
    if (previous) previous.close().catch(() => {})
    if (redis) {
      // The original's test connection; a read of a key no lock uses, so nothing is written.
      try {
        await next.getLock('ac-redislock-node-init-check')
      } catch (err) {
        emit(logger, 'error', { message: 'cannotConnectToRedis' })
        throw fromNative(err, 'init')
      }
    }
  }

  /**
   * Locks `redisKey` for `expires` seconds (default 10) under `value` (default: a random
   * token) if no one holds it: `SET redisKey value EX expires NX`. Resolves to `value` exactly
   * as given (or the token); rejects with `resource_locked` (code 423) if the key is held.
   */
  const lockKey = async (params) => {
    const { redisKey, expires = DEFAULT_EXPIRES, value } = params || {}
    const key = checkKey(redisKey, 'lockKey')
    const seconds = checkExpires(expires)
    const text = value === undefined || value === null ? undefined : valueText(value, 'lockKey')
    if (text === '') throw new ACError('lockKey_value_mustNotBeEmpty')
    const b = batcher('lockKey')
    let stored
    try {
      stored = await b.call('lockKey', key, text, seconds * 1000)
    } catch (err) {
      const mapped = fromNative(err, 'lockKey')
      if (mapped.code === 423) {
        if (logAttempts) emit(logger, logLevel, 'ac-redisLock: REDIS LOCK status for key %s expires %s status %s', key, seconds, 423)
      } else {
        emit(logger, 'error', { message: mapped.message, redisKey: key, reason: mapped.reason })
      }
      throw mapped
    }
    if (logAttempts) emit(logger, logLevel, 'ac-redisLock: REDIS LOCK status for key %s expires %s status %s', key, seconds, 'OK')
    return text === undefined ? stored : value
  }

  /**
   * Releases `redisKey`. With a `value`: deleted only if the key still holds it (one atomic
   * compare-and-delete); otherwise `releaseLock_valueMismatch`, or nothing with
   * `suppressMismatch`. Without a value (or a falsy one, as the original): a force release.
   */
  const releaseLock = async (params) => {
    const { redisKey, value, suppressMismatch: suppress = suppressMismatch } = params || {}
    const key = checkKey(redisKey, 'releaseLock')
    const text = value ? valueText(value, 'releaseLock') : undefined
    const b = batcher('releaseLock')
    try {
      await b.call('releaseLock', key, text, 0, false)
    } catch (err) {
      const mapped = fromNative(err, 'releaseLock')
      if (mapped.message === 'releaseLock_valueMismatch') {
        if (suppress) return
        emit(logger, 'warn', { message: 'releaseLock_valueMismatch', redisKey: key })
      } else {
        emit(logger, 'error', { message: mapped.message, redisKey: key, reason: mapped.reason })
      }
      throw mapped
    }
  }

  /**
   * Resolves to the value `redisKey` holds, or `null`. With a `value` that differs from it,
   * rejects with `getLock_valueMismatch`.
   */
  const getLock = async (params) => {
    const { redisKey, value } = params || {}
    const key = checkKey(redisKey, 'getLock')
    const b = batcher('getLock')
    let stored
    try {
      stored = await b.call('getLock', key)
    } catch (err) {
      const mapped = fromNative(err, 'getLock')
      emit(logger, 'error', { message: mapped.message, redisKey: key, reason: mapped.reason })
      throw mapped
    }
    if (value && valueText(value, 'getLock') !== stored) throw new ACError('getLock_valueMismatch')
    return stored
  }

  /**
   * Takes `key` as a lease: `ttl` ms (default 10000), waiting up to `wait` ms (default 10000;
   * 0 makes one attempt) and woken when the holder releases; `autoRenew` renews it every third
   * of the ttl until released; `fencing` draws a fencing token; `holder` labels the lock for
   * `redislock status`. Rejects with `resource_locked`
   * (423) when the wait ends.
   */
  const acquire = async (key, opts = {}) => {
    const k = checkKey(key, 'acquire')
    const { ttl = DEFAULT_TTL, wait = DEFAULT_WAIT, autoRenew = false, fencing = false, holder } = opts || {}
    checkMs(ttl, 'ttl')
    checkMs(wait, 'wait', { zero: true })
    if (holder !== undefined && typeof holder !== 'string') throw new ACError('acquire_holder_mustBeString')
    const c = ready('acquire')
    let handle
    try {
      handle = await c.acquire(k, { ttlMs: ttl, waitMs: wait, autoRenew: Boolean(autoRenew), fencing: Boolean(fencing), holder })
    } catch (err) {
      const mapped = fromNative(err, 'acquire')
      if (mapped.code === 423) {
        if (logAttempts) emit(logger, logLevel, 'ac-redisLock: lease on %s not acquired within %s ms: held', k, wait)
      } else {
        emit(logger, 'error', { message: mapped.message, redisKey: k, reason: mapped.reason })
      }
      throw mapped
    }
    if (logAttempts) emit(logger, logLevel, 'ac-redisLock: lease on %s acquired for %s ms', k, ttl)
    return new Lease(handle, logger)
  }

  /**
   * Runs `fn(signal, lease)` while holding `key` (renewed unless `autoRenew: false`) and
   * releases it afterwards. `signal` aborts when the lease is lost; then `using` rejects with
   * `lease_lost` (code 410) once `fn` has returned.
   */
  const using = async (key, opts, fn) => {
    if (typeof opts === 'function') {
      fn = opts
      opts = {}
    }
    if (typeof fn !== 'function') throw new ACError('using_fn_isRequired')
    const lease = await acquire(key, { autoRenew: true, ...opts })
    let result
    try {
      result = await fn(lease.signal, lease)
    } catch (err) {
      await lease.release().catch(() => {})
      throw err
    }
    if (lease.signal.aborted) {
      await lease.release().catch(() => {})
      throw lease.signal.reason
    }
    await lease.release()
    return result
  }

  /** Closes the instance's connection, releasing what its leases still hold. */
  const close = async () => {
    const c = client
    client = undefined
    batch = undefined
    initialized = false
    if (c) {
      try {
        await c.close()
      } catch (err) {
        throw fromNative(err, 'close')
      }
    }
  }

  return { init, getLock, lockKey, releaseLock, acquire, using, close }
}

const instance = redisLock()
instance.create = redisLock
instance.ACError = ACError
module.exports = instance
