'use strict'
// Loads the native addon built by `npm run build` (scripts/build.js).
const path = require('node:path')

const file = path.join(__dirname, '..', 'ac_redislock_node.node')
let native
try {
  native = require(file)
} catch (err) {
  if (err.code === 'MODULE_NOT_FOUND') {
    throw new Error(
      `ac-redislock-node: the native addon is not built (${file} is missing): ` +
        `run \`npm run build\` in ${path.dirname(file)} (it needs cargo)`
    )
  }
  throw err
}
module.exports = native
