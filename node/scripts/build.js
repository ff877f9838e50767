#!/usr/bin/env node
// Builds the native addon with cargo and copies it next to index.js as ac_redislock_node.node.
// `node scripts/build.js` builds with --release; `--debug` builds the dev profile (faster to
// compile, slower to run). No prebuilt binary is downloaded: cargo compiles it here.
'use strict'
const { execFileSync } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')

const debug = process.argv.includes('--debug')
const here = path.resolve(__dirname, '..')
const cargo = process.env.CARGO || 'cargo'

const args = ['build', '-p', 'ac-redislock-node']
if (!debug) args.push('--release')
if (process.env.CI || process.argv.includes('--locked')) args.push('--locked')
execFileSync(cargo, args, { cwd: here, stdio: 'inherit' })

// Where cargo put it: the workspace's target directory (CARGO_TARGET_DIR is honoured).
const metadata = JSON.parse(
  execFileSync(cargo, ['metadata', '--format-version', '1', '--no-deps'], {
    cwd: here,
    maxBuffer: 64 * 1024 * 1024
  })
)
const names = {
  linux: 'libac_redislock_node.so',
  darwin: 'libac_redislock_node.dylib',
  win32: 'ac_redislock_node.dll'
}
const name = names[process.platform]
if (!name) throw new Error(`no build recipe for platform ${process.platform}`)
const built = path.join(metadata.target_directory, debug ? 'debug' : 'release', name)
const dest = path.join(here, 'ac_redislock_node.node')
// Copy to a temporary name and rename: a process that has the old addon loaded keeps it.
fs.copyFileSync(built, `${dest}.tmp`)
fs.renameSync(`${dest}.tmp`, dest)
console.log(`built ${path.relative(process.cwd(), dest)} (${debug ? 'debug' : 'release'}) from ${built}`)
