package main

import (
	"github.com/spf13/pflag"

	"github.com/stillpoint/stillpoint/internal/admin"
)

// addDialFlags registers how to reach servers: TLS and the token.
func addDialFlags(f *pflag.FlagSet, o *admin.DialOptions) {
	f.BoolVar(&o.TLS, "tls", false, "connect with TLS")
	f.StringVar(&o.CACert, "ca-cert", "", "PEM file of the certificate authorities to trust (implies --tls)")
	f.StringVar(&o.ServerName, "tls-server-name", "", "name the servers' certificates must carry (implies --tls)")
	f.StringVar(&o.Token, "token", "", "token to send (default $STILLPOINT_TOKEN); never printed")
}
