'use strict'
// The error objects: the original's (ac-custom-error's ACError shape: `message`, `code`,
// `errorMessage`; `code` -1 unless given), and the mapping from the addon's rejections.

/**
 * An error with the shape of the original's ACError: `name` 'Error', `message`, `code`
 * (-1 when none), `errorMessage` (= message); its own enumerable keys are `code` and
 * `errorMessage`, so `JSON.stringify` gives what the original's does. `reason` (not
 * enumerable) says more, when there is more to say; it never holds a lock value.
 */
class ACError extends Error {
  constructor (message, code, reason) {
    super(message)
    this.code = code || -1
    this.errorMessage = message
    if (reason !== undefined) {
      Object.defineProperty(this, 'reason', {
        value: reason,
        enumerable: false,
        writable: true,
        configurable: true
      })
    }
  }
}

/**
 * What the original passes on from Redis for a bad `expires` (ioredis's ReplyError, with
 * Redis's own text). Here it is raised before anything is sent.
 */
class ReplyError extends Error {
  constructor (message) {
    super(message)
    Object.defineProperty(this, 'name', { value: 'ReplyError', enumerable: false, configurable: true, writable: true })
  }
}

const NATIVE = /^\[(\w+)\] ([\s\S]*)$/

/** The addon's rejection `[Kind] text` as `{ kind, text }`; anything else as kind 'Other'. */
function parse (err) {
  const match = NATIVE.exec(err && err.message)
  if (!match) return { kind: 'Other', text: String(err && err.message) }
  return { kind: match[1], text: match[2] }
}

/**
 * Maps an addon rejection to the error the package throws. `fn` is the API function
 * (`lockKey`, `releaseLock`, `getLock`, `acquire`, `lease`).
 */
function fromNative (err, fn) {
  const { kind, text } = parse(err)
  switch (kind) {
    case 'Locked': return new ACError('resource_locked', 423, text)
    case 'NotOwner':
    case 'NotHeld':
      if (fn === 'releaseLock') return new ACError('releaseLock_valueMismatch', -1, text)
      return new ACError(kind === 'NotOwner' ? 'lease_notOwner' : 'lease_lost', kind === 'NotOwner' ? 409 : 410, text)
    case 'Lost': return new ACError('lease_lost', 410, text)
    case 'WrongType': return new ACError('resource_wrongType', 409, text)
    case 'InvalidInput': return new ACError(`${fn}_invalidInput`, 400, text)
    case 'Unavailable':
    case 'QuorumNotReached': return new ACError('redisDown', 503, text)
    case 'Redis': return new ACError('redisError', 502, text)
    default: return new ACError('redisLock_error', 500, text)
  }
}

module.exports = { ACError, ReplyError, fromNative, parse }
