#!/bin/sh
# A "browser" for the test IdP where there is none (a server, a container,
# an ssh session): `jitgate login` runs $BROWSER URL, and this follows URL
# with curl through the IdP's login form as $IDP_LOGIN (default bob; the
# test IdP takes any password) back to jitgate and the CLI's loopback
# address, as a person's browser would. Only with `confirm_cli_login = true`
# does jitgate show a "Sign in from the command line?" page first: then this
# confirms it (the person's click) on the way; by default jitgate's URL
# redirects straight to the IdP.
#
#   IDP_LOGIN=bob BROWSER=$PWD/tests/idp/browser.sh jitgate login
#
# For the local test IdP only: a real IdP wants a real browser.
set -eu
url=$1
login=${IDP_LOGIN:-bob}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
posted=no
i=0
while [ $i -lt 12 ]; do
  i=$((i + 1))
  w=$(curl -s -S --max-time 30 -c "$tmp/jar" -b "$tmp/jar" -o "$tmp/body" -w '%{http_code} %{redirect_url}' "$url")
  code=${w%% *}
  next=${w#* }
  confirm=$(sed -n 's/.*name="confirm" value="\([A-Za-z0-9_-]*\)".*/\1/p' "$tmp/body")
  case $url in */auth/login\?*) ours=yes ;; *) ours=no ;; esac
  if [ "$code" = 200 ] && [ $ours = yes ] && [ -n "$confirm" ]; then
    w=$(curl -s -S --max-time 30 -c "$tmp/jar" -b "$tmp/jar" -o "$tmp/body" -w '%{http_code} %{redirect_url}' \
      --data "confirm=$confirm" "${url%%/auth/login*}/auth/login")
    code=${w%% *}
    next=${w#* }
  fi
  if [ "$code" = 200 ] && [ $posted = no ] && grep -q 'name="login"' "$tmp/body"; then
    posted=yes
    w=$(curl -s -S --max-time 30 -c "$tmp/jar" -b "$tmp/jar" -o "$tmp/body" -w '%{http_code} %{redirect_url}' \
      --data "prompt=login&login=$login&password=any" "$url")
    next=${w#* }
  fi
  if [ -z "$next" ] || [ "$next" = "$w" ]; then
    # No redirect: the CLI's "Signed in" page, or an error page.
    grep -q 'Signed in' "$tmp/body" && exit 0
    echo "browser.sh: stopped at $url ($code)" >&2
    exit 1
  fi
  url=$next
done
echo "browser.sh: too many redirects" >&2
exit 1
