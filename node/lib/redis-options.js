'use strict'
// What `init({ redis })` accepts: a URL, an ioredis client, or a node-redis client. The
// package does not send through the user's client (the Rust core keeps its own connection);
// it reads where the client connects and how (host, port or unix socket, username, password,
// db, TLS, ioredis's keyPrefix), and connects there. Passwords go into the URL handed to the
// addon and nowhere else: no error and no log line repeats them.
const { ACError } = require('./errors')

const enc = encodeURIComponent

/** `host` as the authority of a URL (IPv6 in brackets). */
function hostPart (host) {
  const h = host || '127.0.0.1'
  return h.includes(':') && !h.startsWith('[') ? `[${h}]` : h
}

/** PEM text from what Node's tls options accept for `ca`: a string, a Buffer or an array. */
function pem (ca) {
  if (ca === undefined || ca === null) return undefined
  const list = Array.isArray(ca) ? ca : [ca]
  return list.map((c) => (Buffer.isBuffer(c) ? c.toString('utf8') : String(c))).join('\n')
}

function build ({ host, port, path, username, password, db, tls }) {
  const options = {}
  if (path) {
    const query = []
    if (db) query.push(`db=${enc(db)}`)
    if (username) query.push(`user=${enc(username)}`)
    if (password) query.push(`pass=${enc(password)}`)
    return { url: `unix://${path}${query.length ? `?${query.join('&')}` : ''}`, options }
  }
  let auth = ''
  if (username || password) auth = `${enc(username || '')}${password ? `:${enc(password)}` : ''}@`
  const scheme = tls ? 'rediss' : 'redis'
  const url = `${scheme}://${auth}${hostPart(host)}:${port || 6379}/${db || 0}`
  if (tls && typeof tls === 'object') {
    const ca = pem(tls.ca)
    if (ca) options.tlsCa = ca
    if (tls.rejectUnauthorized === false) {
      // The addon always verifies the server's certificate: give it the `ca` instead.
      throw new ACError('init_tlsRejectUnauthorizedNotSupported', -1,
        'TLS without certificate verification (rejectUnauthorized: false) is not supported; pass the server\'s CA as tls.ca')
    }
  }
  return { url, options }
}

/** An ioredis client (a `Redis`, not a `Cluster`): its `options` has host, port, db. */
function fromIoredis (client) {
  const o = client.options
  if (client.isCluster) throw new ACError('init_redisClusterNotSupported')
  if (Array.isArray(o.sentinels) && o.sentinels.length) throw new ACError('init_redisSentinelNotSupported')
  const built = build({
    host: o.host,
    port: o.port,
    path: o.path,
    username: o.username,
    password: o.password,
    db: o.db,
    tls: o.tls
  })
  if (o.keyPrefix) built.options.keyPrefix = o.keyPrefix
  return built
}

/** A node-redis (v4+) client: `options` has `socket`, `username`, `password`, `database`. */
function fromNodeRedis (client) {
  const o = client.options || {}
  const socket = o.socket || {}
  let fromUrl = {}
  if (o.url) {
    // What node-redis itself parsed from the URL is already in `socket` and the fields; the URL
    // only adds the scheme (rediss://) when socket.tls was not set.
    const u = new URL(o.url)
    fromUrl = { tls: u.protocol === 'rediss:' }
  }
  const tls = socket.tls || fromUrl.tls
  return build({
    host: socket.host,
    port: socket.port,
    path: socket.path,
    username: o.username,
    password: o.password,
    db: o.database,
    tls: tls ? { ca: socket.ca, rejectUnauthorized: socket.rejectUnauthorized } : false
  })
}

/**
 * Where to connect for `redis` as given to init: `{ url, options }` (options: tlsCa,
 * keyPrefix), or throws init_redisNotSupported for something it cannot read.
 */
function connection (redis) {
  if (typeof redis === 'string') return { url: redis, options: {} }
  if (redis instanceof URL) return { url: redis.href, options: {} }
  const o = redis && redis.options
  if (o && typeof o === 'object') {
    if (redis.isCluster || 'port' in o || 'db' in o || 'sentinels' in o) return fromIoredis(redis)
    if ('socket' in o || 'url' in o || 'database' in o) return fromNodeRedis(redis)
  }
  throw new ACError('init_redisNotSupported', -1,
    'redis must be an ioredis client, a node-redis client or a redis:// URL')
}

module.exports = { connection }
