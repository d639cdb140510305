#!/usr/bin/env bash
# Start two Debian docker-registry instances for the tests marked `registry`:
#   127.0.0.1:5000  anonymous (the sample image is pushed here by the tests / `stockade sample build --push`)
#   127.0.0.1:5001  htpasswd basic auth, user "stockade" password "stockade-test" (test-only credentials)
# Each has its own config and storage under /var/lib/stockade-ci/registry. Idempotent and fast when running.
set -euo pipefail
base=/var/lib/stockade-ci/registry
mkdir -p "$base/open" "$base/auth"

if [ ! -s "$base/htpasswd" ]; then
  htpasswd -Bbn stockade stockade-test > "$base/htpasswd.tmp"
  mv "$base/htpasswd.tmp" "$base/htpasswd"
fi

write_config() { # name port auth-block
  cat > "$base/$1.yml.tmp" <<YML
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $base/$1
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$2
$3
YML
  mv "$base/$1.yml.tmp" "$base/$1.yml"
}

write_config open 5000 ""
write_config auth 5001 "auth:
  htpasswd:
    realm: stockade-test
    path: $base/htpasswd"

start() { # name port
  if curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$2/v2/"; then
    return 0
  fi
  setsid nohup docker-registry serve "$base/$1.yml" > "$base/$1.log" 2>&1 < /dev/null &
  for _ in $(seq 1 50); do
    curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$2/v2/" && return 0
    sleep 0.1
  done
  echo "docker-registry $1 did not start on 127.0.0.1:$2; see $base/$1.log" >&2
  return 1
}

start open 5000
start auth 5001
