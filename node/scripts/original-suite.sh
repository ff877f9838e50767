#!/usr/bin/env bash
# Runs the original ac-redislock's own test suite (mocha + chai + ioredis) against this package,
# with only its `require` of the library changed. The original's code is not part of this
# repository: give the path of a checkout of it (a work tree, or a bare git directory, such as
# a clone of github.com/AdmiralCloud/ac-redislock).
#
#   bash scripts/original-suite.sh /path/to/ac-redislock
#
# What it does: copies the checkout's test/ and package.json into a temporary folder, rewrites
# `require('../index')` to this package's folder, installs the test dependencies the original
# names (mocha, chai, ioredis, at its versions) from the npm registry into that folder, starts
# a private redis-server on a free port, and runs mocha. The original's tests connect with
# `new Redis()` (127.0.0.1:6379, and db 1); a preloaded file points ioredis's default port at
# the private server instead, so the Redis on 6379, if the machine runs one, is never touched.
# The package must be built first (`npm run build` or `npm run build:debug`).
set -euo pipefail

src="${1:?usage: original-suite.sh /path/to/checkout-of-ac-redislock}"
here="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d "${TMPDIR:-/tmp}/acrl-original-suite.XXXXXX")"
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

# The original's tests and package.json, from a work tree or a bare git directory.
if [ -f "$src/test/test.js" ]; then
  cp -r "$src/test" "$work/test"
  cp "$src/package.json" "$work/package.json.original"
elif git --git-dir="$src" rev-parse --verify -q HEAD >/dev/null; then
  git --git-dir="$src" archive HEAD test package.json | tar -x -C "$work"
  mv "$work/package.json" "$work/package.json.original"
else
  echo "original-suite: $src is neither a checkout with test/test.js nor a git directory" >&2
  exit 2
fi
echo "original-suite: the original's tests from $src ($(cd "$work" && ls test | tr '\n' ' '))"

# The one change to the tests: the library they require is this package.
for f in "$work"/test/*.js; do
  sed -i -E "s#require\\((['\"])(\\.\\./index(\\.js)?|\\.\\./?|\\.\\.|ac-redislock)\\1\\)#require('$here')#g" "$f"
done
echo "original-suite: rewritten: $(grep -ho "require('$here')" "$work"/test/*.js | sort | uniq -c | tr -s ' ')"

# Its test dependencies, at the versions its package.json names.
deps="$(node -e '
  const p = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")); const dev = p.devDependencies || {};
  console.log(["mocha", "chai", "ioredis"].map((n) => `${n}@${dev[n] || "latest"}`).join(" "))
' "$work/package.json.original")"
echo "original-suite: installing $deps"
(cd "$work" && echo '{"name":"original-suite","private":true}' > package.json &&
  npm install --no-audit --no-fund --loglevel=error $deps >/dev/null)

# A private redis-server on a free port.
port="$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')"
redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$work" \
  --logfile "$work/redis.log" &
server_pid=$!
for _ in $(seq 1 200); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
  sleep 0.05
done
if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
  echo "original-suite: redis-server did not start on port $port:" >&2
  cat "$work/redis.log" >&2
  exit 1
fi
echo "original-suite: redis-server pid $server_pid on 127.0.0.1:$port"

# `new Redis()` in the tests: ioredis's default port becomes the private server's.
cat > "$work/redirect.js" <<JS
const { DEFAULT_REDIS_OPTIONS } = require('ioredis/built/redis/RedisOptions')
DEFAULT_REDIS_OPTIONS.port = Number(process.env.ORIGINAL_SUITE_REDIS_PORT)
DEFAULT_REDIS_OPTIONS.host = '127.0.0.1'
JS

cd "$work"
ORIGINAL_SUITE_REDIS_PORT="$port" npx mocha --reporter spec --require ./redirect.js test/
