#!/usr/bin/env bash
# Fetches the console's third-party files from npm at pinned versions (run by `make web`):
# Apache ECharts' minified build with its licence and notice, served by the console, and
# axe-core with its licences, which only the browser tests inject. Needs npm; the outputs are
# committed, so neither `make run` nor `make test` needs Node.
set -euo pipefail
ECHARTS_VERSION=6.1.0
AXE_VERSION=4.14.1
here="$(cd "$(dirname "$0")" && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
npm pack --silent "echarts@$ECHARTS_VERSION" "axe-core@$AXE_VERSION" >/dev/null
mkdir echarts axe
tar xzf "echarts-$ECHARTS_VERSION.tgz" -C echarts
tar xzf "axe-core-$AXE_VERSION.tgz" -C axe
cp echarts/package/dist/echarts.min.js "$here/assets/echarts.min.js"
cp echarts/package/LICENSE "$here/assets/echarts-LICENSE.txt"
cp echarts/package/NOTICE "$here/assets/echarts-NOTICE.txt"
cp axe/package/axe.min.js "$here/testdata/axe/axe.min.js"
cp axe/package/LICENSE "$here/testdata/axe/LICENSE"
cp axe/package/LICENSE-3RD-PARTY.txt "$here/testdata/axe/LICENSE-3RD-PARTY.txt"
echo "echarts $ECHARTS_VERSION and axe-core $AXE_VERSION copied into $here"
