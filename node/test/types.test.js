'use strict'
// index.d.ts type-checks against the documented use (test/types/check.ts), under --strict.
const { it } = require('node:test')
const assert = require('node:assert/strict')
const { spawnSync } = require('node:child_process')
const path = require('node:path')

it('index.d.ts fits the documented use (tsc --strict)', () => {
  const tsc = path.join(__dirname, '..', 'node_modules', 'typescript', 'bin', 'tsc')
  const r = spawnSync(process.execPath, [tsc, '--noEmit', '--strict', '--target', 'es2022', '--module', 'commonjs',
    '--lib', 'es2022,dom', path.join(__dirname, 'types', 'check.ts')], { encoding: 'utf8' })
  assert.equal(r.status, 0, `${r.stdout}${r.stderr}`)
})
