'use strict'
// The Rust side for the interop tests: the `redislock` CLI of this workspace
// (`cargo build -p ac-redislock-cli`), or REDISLOCK_BIN.
const { execFileSync, spawnSync } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')

let cached
function redislockBin () {
  if (cached) return cached
  if (process.env.REDISLOCK_BIN) return (cached = process.env.REDISLOCK_BIN)
  const root = path.resolve(__dirname, '..', '..')
  const meta = JSON.parse(execFileSync('cargo', ['metadata', '--format-version', '1', '--no-deps'], { cwd: root, maxBuffer: 64 << 20 }))
  const bin = path.join(meta.target_directory, 'debug', 'redislock')
  // Built here when missing (CI's `cargo test --workspace` has built it already).
  execFileSync('cargo', ['build', '-p', 'ac-redislock-cli', ...(process.env.CI ? ['--locked'] : [])], { cwd: root, stdio: 'inherit' })
  if (!fs.existsSync(bin)) throw new Error(`redislock was not built at ${bin}`)
  return (cached = bin)
}

/** Runs `redislock --url <url> ...args`: { status, stdout, stderr }. */
function redislock (url, ...args) {
  const r = spawnSync(redislockBin(), ['--url', url, ...args], { encoding: 'utf8', timeout: 20000 })
  if (r.error) throw r.error
  return { status: r.status, stdout: r.stdout.trim(), stderr: r.stderr.trim() }
}

module.exports = { redislock, redislockBin }
