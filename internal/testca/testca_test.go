package testca

import (
	"crypto/tls"
	"crypto/x509"
	"testing"
)

func TestIssuedCertificatesVerify(t *testing.T) {
	ca := New(t, "test ca")
	for _, c := range []struct {
		client bool
		usage  x509.ExtKeyUsage
	}{{false, x509.ExtKeyUsageServerAuth}, {true, x509.ExtKeyUsageClientAuth}} {
		certPEM, keyPEM := ca.Issue(t, 7, c.client)
		pair, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			t.Fatal(err)
		}
		cert, err := x509.ParseCertificate(pair.Certificate[0])
		if err != nil {
			t.Fatal(err)
		}
		opts := x509.VerifyOptions{Roots: ca.Pool(), KeyUsages: []x509.ExtKeyUsage{c.usage}}
		if !c.client {
			opts.DNSName = "127.0.0.1"
		}
		if _, err := cert.Verify(opts); err != nil {
			t.Errorf("client %v: %v", c.client, err)
		}
		if cert.SerialNumber.Int64() != 7 {
			t.Errorf("serial %v, want 7", cert.SerialNumber)
		}
	}
}
