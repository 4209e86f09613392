package spec

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const webhooksHead = `apiVersion: switchyard.dev/v1alpha1
kind: Service
metadata:
  name: web
spec:
  listen: 127.0.0.1:8080
  versions:
    - name: blue
      targets: ["127.0.0.1:9001"]
  stable: blue
  analysis:
    interval: 30s
    metrics:
      - name: request-success-rate
        thresholdRange: {min: 99}
  webhooks:
`

// writeWebhooks writes a service file with the given webhooks list
// (indented under spec.webhooks) next to a secret file, and returns its path.
func writeWebhooks(t *testing.T, webhooks string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "hook.secret"), []byte("whsec_c2VjcmV0\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "web.yaml")
	if err := os.WriteFile(file, []byte(webhooksHead+webhooks), 0o644); err != nil {
		t.Fatal(err)
	}
	return file
}

func TestWebhooksValid(t *testing.T) {
	file := writeWebhooks(t, `    - name: load-test
      type: rollout
      url: http://flagger-loadtester.test/
      timeout: 5s
      metadata:
        cmd: "hey -z 1m -q 10 -c 2 http://myapp-canary:8080/"
    - name: approve
      type: confirm-promotion
      url: https://gate.example.com/approve
      retries: 0
      secretFile: hook.secret
`)
	svcs, err := LoadFiles(file)
	if err != nil {
		t.Fatalf("LoadFiles: %v", err)
	}
	sp := &svcs[0].Spec
	lt := sp.Webhook("load-test")
	if lt == nil || lt.Timeout.Duration != 5*time.Second || *lt.Retries != DefaultWebhookRetries {
		t.Fatalf("load-test = %+v, want timeout 5s and the default retries", lt)
	}
	if got := lt.Metadata["cmd"]; got != "hey -z 1m -q 10 -c 2 http://myapp-canary:8080/" {
		t.Errorf("metadata.cmd = %q", got)
	}
	ap := sp.Webhook("approve")
	if ap.Timeout.Duration != DefaultWebhookTimeout || *ap.Retries != 0 {
		t.Errorf("approve: timeout %v retries %d, want the default timeout and 0 retries", ap.Timeout, *ap.Retries)
	}
	secret, err := ap.Secret(svcs[0].Dir())
	if err != nil || string(secret) != "whsec_c2VjcmV0" {
		t.Errorf("Secret = %q, %v; want the file's trimmed content", secret, err)
	}
	if got := len(sp.WebhooksOf(WebhookConfirmPromotion)); got != 1 {
		t.Errorf("WebhooksOf(confirm-promotion) has %d, want 1", got)
	}
	if got := sp.GatePoll(); got != 30*time.Second {
		t.Errorf("GatePoll = %v, want the analysis interval 30s", got)
	}
}

func TestWebhooksInvalid(t *testing.T) {
	t.Setenv("SWITCHYARD_TEST_UNSET_SECRET", "")
	tests := []struct {
		name     string
		webhooks string
		path     string
		want     string
	}{
		{"unknown type", "    - {name: a, type: pre-deploy, url: http://x.test/}\n", "spec.webhooks[0].type", "must be one of confirm-rollout, pre-rollout"},
		{"no type", "    - {name: a, url: http://x.test/}\n", "spec.webhooks[0].type", "is required"},
		{"no name", "    - {type: event, url: http://x.test/}\n", "spec.webhooks[0].name", "is required"},
		{"duplicate name", "    - {name: a, type: event, url: http://x.test/}\n    - {name: a, type: event, url: http://y.test/}\n", "spec.webhooks[1].name", "must be unique"},
		{"ftp", "    - {name: a, type: event, url: ftp://x.test/}\n", "spec.webhooks[0].url", "must be an http or https URL"},
		{"credentials", "    - {name: a, type: event, url: \"http://me:hunter2@x.test/\"}\n", "spec.webhooks[0].url", "must not carry a user or password"},
		{"no host", "    - {name: a, type: event, url: \"http:///x\"}\n", "spec.webhooks[0].url", "must name a host"},
		{"both secrets", "    - {name: a, type: event, url: http://x.test/, secretFile: hook.secret, secretEnv: HOME}\n", "spec.webhooks[0].secretEnv", "choose one"},
		{"missing secret file", "    - {name: a, type: event, url: http://x.test/, secretFile: nope}\n", "spec.webhooks[0].secretFile", "does not exist"},
		{"unset secret env", "    - {name: a, type: event, url: http://x.test/, secretEnv: SWITCHYARD_TEST_UNSET_SECRET}\n", "spec.webhooks[0].secretEnv", "must name an environment variable that is set"},
		{"retries too many", "    - {name: a, type: event, url: http://x.test/, retries: 11}\n", "spec.webhooks[0].retries", "must be 0-10"},
		{"timeout too long", "    - {name: a, type: event, url: http://x.test/, timeout: 1h}\n", "spec.webhooks[0].timeout", "must be 1s to 5m"},
		{"unknown field", "    - {name: a, type: event, url: http://x.test/, secret: hunter2}\n", "spec.webhooks[0].secret", "unknown field"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := LoadFiles(writeWebhooks(t, tt.webhooks))
			if err == nil {
				t.Fatal("LoadFiles succeeded, want an error")
			}
			var found bool
			for _, fe := range FieldErrors(err) {
				if fe.Path == tt.path && strings.Contains(fe.Error(), tt.want) {
					found = true
				}
			}
			if !found {
				t.Errorf("error does not name %s with %q:\n%v", tt.path, tt.want, err)
			}
			if strings.Contains(err.Error(), "hunter2") && tt.name == "credentials" {
				t.Errorf("error repeats the URL's password: %v", err)
			}
		})
	}
}

func TestRolloutWebhookNeedsAnalysis(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "web.yaml")
	doc := strings.Replace(webhooksHead, "  analysis:\n    interval: 30s\n    metrics:\n      - name: request-success-rate\n        thresholdRange: {min: 99}\n", "", 1) +
		"    - {name: load-test, type: rollout, url: http://x.test/}\n"
	if err := os.WriteFile(file, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := LoadFiles(file)
	if err == nil || !strings.Contains(err.Error(), "spec.webhooks[0].type") || !strings.Contains(err.Error(), "set spec.analysis") {
		t.Fatalf("LoadFiles = %v, want spec.webhooks[0].type asking for spec.analysis", err)
	}
}
