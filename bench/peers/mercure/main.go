// Command caddy is Caddy with the Mercure hub module: the Mercure peer of
// scripts/bench.sh, built by bench/peers/build.sh mercure (versions pinned in go.mod).
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	_ "github.com/caddyserver/caddy/v2/modules/standard"
	_ "github.com/dunglas/mercure/caddy"
)

func main() {
	caddycmd.Main()
}
