'use strict'
// Starts private redis-server processes for the tests, on free ports, and stops them by their
// own pid. Never touches a Redis already running on the machine (6379 or any other). A server
// that cannot be started throws, so the test fails loudly.
const { spawn } = require('node:child_process')
const fs = require('node:fs')
const net = require('node:net')
const tls = require('node:tls')
const os = require('node:os')
const path = require('node:path')

const BIN = process.env.REDISLOCK_SERVER_BIN || 'redis-server'
const servers = new Set()

function freePort () {
  return new Promise((resolve, reject) => {
    const srv = net.createServer()
    srv.unref()
    srv.on('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address()
      srv.close(() => resolve(port))
    })
  })
}

function ping (port, ca) {
  return new Promise((resolve) => {
    const sock = ca
      ? tls.connect({ port, host: '127.0.0.1', ca, servername: 'localhost' })
      : net.connect(port, '127.0.0.1')
    let data = ''
    sock.setTimeout(500)
    sock.on(ca ? 'secureConnect' : 'connect', () => sock.write('PING\r\n'))
    sock.on('data', (d) => {
      data += d
      if (data.includes('\r\n')) {
        sock.destroy()
        resolve(data.startsWith('+PONG') || data.startsWith('-NOAUTH'))
      }
    })
    sock.on('error', () => resolve(false))
    sock.on('timeout', () => { sock.destroy(); resolve(false) })
  })
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

class RedisServer {
  constructor (port, child, dir, logFile) {
    this.port = port
    this.child = child
    this.dir = dir
    this.logFile = logFile
    this.url = `redis://127.0.0.1:${port}`
    this.exited = new Promise((resolve) => child.once('exit', resolve))
  }

  /** Stops the server (SIGKILL: gone at once, like a crash) and waits for it to exit. */
  async kill () {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      process.kill(this.child.pid, 'SIGKILL')
    }
    await this.exited
    servers.delete(this)
  }

  /** Stops the server and removes its folder. */
  async stop () {
    await this.kill()
    fs.rmSync(this.dir, { recursive: true, force: true })
  }
}

/**
 * Starts `redis-server --port P --save '' --appendonly no` (plus `extra` arguments) on a free
 * port and waits until it answers PING. Throws with the server's log if it does not.
 */
async function startRedis (extra = [], { port: wanted, tls: certs } = {}) {
  let lastError
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = wanted || (await freePort())
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'acrl-node-'))
    const logFile = path.join(dir, 'redis.log')
    // With `tls` ({ cert, key, ca }: file paths), the port speaks TLS only.
    const listen = certs
      ? ['--port', '0', '--tls-port', String(port), '--tls-cert-file', certs.cert,
          '--tls-key-file', certs.key, '--tls-ca-cert-file', certs.ca, '--tls-auth-clients', 'no']
      : ['--port', String(port)]
    const args = [...listen, '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
      '--dir', dir, '--logfile', logFile, ...extra]
    let child
    try {
      child = spawn(BIN, args, { stdio: 'ignore' })
    } catch (err) {
      throw new Error(`cannot start ${BIN}: ${err.message}`)
    }
    const spawnError = new Promise((resolve) => child.once('error', resolve))
    const server = new RedisServer(port, child, dir, logFile)
    servers.add(server)
    const deadline = Date.now() + 10000
    while (Date.now() < deadline) {
      const err = await Promise.race([spawnError, sleep(0).then(() => null)])
      if (err) throw new Error(`cannot start ${BIN} (is redis-server installed?): ${err.message}`)
      if (child.exitCode !== null) break
      if (await ping(port, certs && fs.readFileSync(certs.ca))) return server
      await sleep(20)
    }
    const log = fs.existsSync(logFile) ? fs.readFileSync(logFile, 'utf8') : '(no log)'
    lastError = new Error(`redis-server on port ${port} did not start:\n${log}`)
    await server.stop()
    if (wanted) break
  }
  throw lastError
}

process.on('exit', () => {
  for (const s of servers) {
    try { process.kill(s.child.pid, 'SIGKILL') } catch {}
  }
})

/**
 * A CA and a server certificate for localhost and 127.0.0.1, made with openssl in a temporary
 * folder: { dir, ca, cert, key } (file paths). Throws if openssl fails.
 */
function makeCerts () {
  const { execFileSync } = require('node:child_process')
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'acrl-node-tls-'))
  const f = (name) => path.join(dir, name)
  const run = (...args) => execFileSync('openssl', args, { stdio: 'pipe' })
  run('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', f('ca.key'), '-out', f('ca.crt'), '-days', '2', '-subj', '/CN=ac-redislock test CA')
  run('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', f('server.key'), '-out', f('server.csr'), '-subj', '/CN=localhost')
  fs.writeFileSync(f('ext'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\n')
  run('x509', '-req', '-in', f('server.csr'), '-CA', f('ca.crt'), '-CAkey', f('ca.key'), '-CAcreateserial', '-out', f('server.crt'), '-days', '2', '-extfile', f('ext'))
  return { dir, ca: f('ca.crt'), cert: f('server.crt'), key: f('server.key') }
}

module.exports = { startRedis, freePort, sleep, makeCerts }
