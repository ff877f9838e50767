'use strict'
// Gathers the seed calls (lockKey, releaseLock, getLock) made in one tick into one call of
// the addon (`runBatch`): one promise and one wake-up of this thread for the lot, instead of
// one each; the crate sends the batch to Redis as one pipeline. The calls still run
// concurrently and each answers on its own terms; a call made alone goes out at the end of its
// tick, just the same. A batch crosses the boundary packed: one string and one Float64Array
// each way, rather than five values per call.

const OP = { lockKey: 0, releaseLock: 1, getLock: 2 }
const MAX_BATCH = Number(process.env.AC_REDISLOCK_MAX_BATCH) || 20

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

  /**
   * Sends one batch, packed (see the addon's `runBatch`): the keys and values as one string,
   * four numbers per call; the outcomes come back as one string and two numbers per call.
   */
  send (calls) {
    const n = calls.length
    const nums = new Float64Array(n * 4)
    let text = ''
    for (let i = 0; i < n; i++) {
      const c = calls[i]
      const at = i * 4
      nums[at] = c.op + (c.suppress ? 4 : 0)
      nums[at + 1] = Buffer.byteLength(c.key)
      text += c.key
      if (c.value === undefined || c.value === null) {
        nums[at + 2] = -1
      } else {
        nums[at + 2] = Buffer.byteLength(c.value)
        text += c.value
      }
      nums[at + 3] = c.expiresMs || 0
    }
    this.client.runBatch(text, nums).then((out) => {
      const got = out.nums
      const all = out.text
      let pos = 0
      for (let i = 0; i < n; i++) {
        const status = got[2 * i]
        const len = got[2 * i + 1]
        const part = all.slice(pos, pos + len)
        pos += len
        if (status === 0) calls[i].resolve(null)
        else if (status === 1) calls[i].resolve(part)
        else calls[i].reject({ message: part })
      }
    }, (err) => {
      for (const c of calls) c.reject(err)
    })
  }
}

module.exports = { Batcher }
