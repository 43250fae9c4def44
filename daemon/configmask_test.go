package daemon

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pyrorelay/pyrorelay/relay"
)

func TestIsSecretKey(t *testing.T) {
	tests := map[string]bool{
		"password": true, "bearer_token": true, "client_secret": true, "api_key": true, "auth_tokens": true,
		"bearer_token_file": false, "password_file": false, "ca_file": false, "key_file": false,
		"username": false, "url": false, "tenant_id": false, "data_dir": false,
	}
	for key, want := range tests {
		if got := isSecretKey(key); got != want {
			t.Errorf("isSecretKey(%q) = %v, want %v", key, got, want)
		}
	}
}

func TestMaskedYAML(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Destinations = []relay.Destination{{
		Name: "prod", URL: "https://relay:url-S3CRET@profiles.example.com",
		BearerToken: "bearer-S3CRET", BearerTokenFile: "",
		Headers: map[string]string{"X-Api-Key": "hdr-S3CRET", "X-Team": "a"},
	}}
	out, err := MaskedYAML(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "S3CRET") {
		t.Errorf("a secret shows:\n%s", out)
	}
	for _, want := range []string{"X-Team: a", "bearer_token: \"" + MaskedValue + "\"", "https://relay:xxxxx@profiles.example.com"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("no %q in:\n%s", want, out)
		}
	}
	path := filepath.Join(t.TempDir(), "masked.yaml")
	if err := os.WriteFile(path, out, 0o600); err != nil {
		t.Fatal(err)
	}
	back := DefaultConfig()
	if err := LoadConfigFile(path, &back); err != nil {
		t.Errorf("the output does not load: %v", err)
	}
}
