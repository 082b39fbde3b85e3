// etcdctl (API v3 only), built from the Go module proxy because `go install` refuses etcd's replace directives.
package main

import (
	"fmt"
	"os"

	"go.etcd.io/etcd/etcdctl/v3/ctlv3"
)

func main() {
	// As upstream's main: ETCDCTL_API picks the API and is unset before ctlv3 reads ETCDCTL_* flags.
	api := os.Getenv("ETCDCTL_API")
	os.Unsetenv("ETCDCTL_API")
	if api != "" && api != "3" {
		fmt.Fprintf(os.Stderr, "unsupported API version: %v (this build has API v3 only)\n", api)
		os.Exit(1)
	}
	ctlv3.MustStart()
}
