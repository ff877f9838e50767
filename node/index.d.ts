// Type declarations of ac-redislock-node: the API of the Node package ac-redislock (v6) and the
// lease API, on the Rust crate ac-redislock.

declare namespace redisLock {
  /** An ioredis client (`new Redis(...)`), a node-redis client (`createClient(...)`) or a URL. */
  export type RedisLike =
    | string
    | URL
    | { options: Record<string, unknown>; [key: string]: unknown }

  /** Anything with the log methods used: `logger[logLevel](...)`, `warn`, `error`. */
  export interface Logger {
    [level: string]: ((...args: unknown[]) => void) | unknown
  }

  export interface InitParams {
    /** Your ioredis or node-redis client (its host, port, username, password, db, TLS and
     * ioredis keyPrefix are read; the package keeps its own connection), or a redis:// URL.
     * None: the in-memory store (one process only). */
    redis?: RedisLike
    /** Default: console. */
    logger?: Logger
    /** The logger method for each lock attempt. Default: 'log'. */
    logLevel?: string
    /** The instance default of releaseLock's suppressMismatch. Default: false. */
    suppressMismatch?: boolean
    /** Set the instance up again (init runs once otherwise). */
    reInit?: boolean
  }

  export interface LockKeyParams {
    redisKey: string | number
    /** Seconds, a whole number above 0. Default: 10. */
    expires?: number | string
    /** The value to store. Default (none, or null): a random token (40 hex characters). */
    value?: string | number | bigint | null
  }

  export interface ReleaseLockParams {
    redisKey: string | number
    /** Release only if the key still holds this value; none (or a falsy one): force release. */
    value?: string | number | bigint | null
    /** Resolve quietly on a mismatch. Default: the instance's setting. */
    suppressMismatch?: boolean
  }

  export interface GetLockParams {
    redisKey: string | number
    /** Reject with getLock_valueMismatch if the key holds something else. */
    value?: string | number | bigint
  }

  export interface AcquireOptions {
    /** The lease, in ms. Default: 10000. */
    ttl?: number
    /** How long to wait for a held lock, in ms; 0 makes one attempt. Default: 10000. */
    wait?: number
    /** Renew every third of the ttl until released. Default: false (true in `using`). */
    autoRenew?: boolean
    /** Draw a fencing token, strictly increasing per key. Default: false. */
    fencing?: boolean
    /** A label naming the holder (host, pid, job), shown by `redislock status`; no secrets. */
    holder?: string
  }

  /** Why a lease ended, as `signal.reason.lossReason`. */
  export type LossReason =
    | 'expired'
    | 'deleted'
    | 'takenOver'
    | 'unavailable'
    | 'maxHold'
    | 'closed'

  /** The errors the package throws: the original's shape (message, code, errorMessage). */
  export interface ACError extends Error {
    /** 423 (resource_locked), 503 (redisDown), 410 (lease_lost), ...; -1 when none. */
    code: number
    errorMessage: string
    /** More about it, when there is more (never a lock value). Not enumerable. */
    readonly reason?: string
    /** On lease_lost from a lease's signal: how the lease ended. */
    lossReason?: LossReason
  }

  export interface Lease {
    readonly key: string
    /** The value the key holds while the lease lasts. */
    readonly value: string
    /** With `fencing: true`: a number that strictly increases per key; else null. */
    readonly fencingToken: number | null
    /** Aborted when the lease is lost (not on release); its reason is an ACError lease_lost. */
    readonly signal: AbortSignal
    readonly isHeld: boolean
    /** Milliseconds left (0 once ended). */
    readonly remaining: number
    /** Sets the lease to `ttl` ms from now if still held; resolves to the ms left. */
    extend(ttl?: number): Promise<number>
    /** Releases the lock; the longest waiter gets it. Rejects lease_lost if it was lost first. */
    release(): Promise<void>
  }

  export interface RedisLock {
    init(params?: InitParams): Promise<void>
    /** Resolves to `value` exactly as given (or the generated token); rejects resource_locked (423). */
    lockKey(params: LockKeyParams & { value?: null }): Promise<string>
    lockKey<V extends string | number | bigint>(params: LockKeyParams & { value: V }): Promise<V>
    releaseLock(params: ReleaseLockParams): Promise<void>
    /** The stored value, or null. */
    getLock(params: GetLockParams): Promise<string | null>
    /** Takes the key as a lease; rejects resource_locked (423) when the wait runs out. */
    acquire(key: string, options?: AcquireOptions): Promise<Lease>
    /** Runs `fn` holding the key (renewed), then releases; rejects lease_lost if lost meanwhile. */
    using<T>(key: string, options: AcquireOptions, fn: (signal: AbortSignal, lease: Lease) => Promise<T> | T): Promise<T>
    using<T>(key: string, fn: (signal: AbortSignal, lease: Lease) => Promise<T> | T): Promise<T>
    /** Closes the connection and releases what leases still hold. */
    close(): Promise<void>
  }
}

declare const redisLock: redisLock.RedisLock & {
  /** A new, independent instance (instances made by create() have no create). */
  create(): redisLock.RedisLock
  ACError: new (message: string, code?: number, reason?: string) => redisLock.ACError
}

export = redisLock
