// etcdctl, built from the Go module proxy because `go install` refuses etcd's replace directives.
package main

import "go.etcd.io/etcd/etcdctl/v3/ctlv3"

func main() {
	ctlv3.MustStart()
}
