#!/bin/sh
# Start the local test IdP (panva/oidc-provider) for jitgate's sign-in:
#   tests/idp/run.sh [PORT] [JITGATE_ADMIN_URL]
# defaults: 5556 and http://127.0.0.1:8080. Issuer http://127.0.0.1:PORT,
# client `jitgate`, users alice (oncall, jitgate-admins), bob (oncall),
# carol (leads); any password.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
port=${1:-5556}
admin=${2:-http://127.0.0.1:8080}
command -v node >/dev/null || { echo "run.sh: node is needed (apt-get install nodejs npm)" >&2; exit 1; }
[ -d "$here/node_modules/oidc-provider" ] || (cd "$here" && npm ci --no-audit --no-fund)
exec node "$here/idp.mjs" "$port" "$admin/auth/callback"
