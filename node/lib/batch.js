'use strict'
// Gathers the seed calls (lockKey, releaseLock, getLock) made in one tick into one call of
// the addon (`runBatch`): one promise and one wake-up of this thread for the lot, instead of
// one each. The calls still run concurrently and each answers on its own terms; a call made
// alone goes out at the end of its tick, just the same.

const OP = { lockKey: 0, releaseLock: 1, getLock: 2 }
const MAX_BATCH = Number(process.env.AC_REDISLOCK_MAX_BATCH) || 16

class Batcher {
  constructor (client) {
    this.client = client
    this.pending = []
    this.scheduled = false
    this.flush = this.flush.bind(this)
  }

  /** Queues one call; resolves to its value, or rejects with `{ message: '[Kind] text' }`. */
  call (op, key, value, expiresMs, suppress) {
    return new Promise((resolve, reject) => {
      this.pending.push({ op: OP[op], key, value, expiresMs, suppress, resolve, reject })
      if (!this.scheduled) {
        this.scheduled = true
        process.nextTick(this.flush)
      }
    })
  }

  flush () {
    this.scheduled = false
    const all = this.pending
    this.pending = []
    // In slices, so the first slice's answers can come back while later ones are on their way.
    for (let i = 0; i < all.length; i += MAX_BATCH) this.send(all.slice(i, i + MAX_BATCH))
  }

  send (calls) {
    const n = calls.length
    const ops = new Array(n)
    const keys = new Array(n)
    const values = new Array(n)
    const expires = new Array(n)
    const suppress = new Array(n)
    for (let i = 0; i < n; i++) {
      const c = calls[i]
      ops[i] = c.op
      keys[i] = c.key
      values[i] = c.value === undefined ? null : c.value
      expires[i] = c.expiresMs || 0
      suppress[i] = Boolean(c.suppress)
    }
    this.client.runBatch(ops, keys, values, expires, suppress).then((out) => {
      for (let i = 0; i < n; i++) {
        const err = out.errors[i]
        if (err === null || err === undefined) calls[i].resolve(out.values[i])
        else calls[i].reject({ message: err })
      }
    }, (err) => {
      for (const c of calls) c.reject(err)
    })
  }
}

module.exports = { Batcher }
