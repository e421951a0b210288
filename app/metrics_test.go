package app_test

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"syscall"
	"testing"

	"github.com/panelsync/panelsync/app/apptest"
	"github.com/panelsync/panelsync/models/dbtest"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

func TestMetrics_OnTheirOwnListener_ThatStartsAndStopsWithTheNode(t *testing.T) {
	for _, b := range dbtest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			cfg := apptest.Config(t, b)
			cfg.MetricsAddr = "127.0.0.1:0"
			n := apptest.Start(t, cfg)
			metrics := "http://" + n.App.MetricsAddr() + "/metrics"
			if n.App.MetricsAddr() == "" || strings.HasSuffix(n.App.MetricsAddr(), ":0") {
				t.Fatalf("MetricsAddr = %q, want the bound address", n.App.MetricsAddr())
			}

			if status, _ := get(t, n.BaseURL+"/healthz"); status != http.StatusOK {
				t.Fatalf("healthz: %d", status)
			}
			if status, body := get(t, n.BaseURL+"/metrics"); status != http.StatusNotFound {
				t.Errorf("/metrics on the API listener: %d %.200s", status, body)
			}
			status, body := get(t, metrics)
			if status != http.StatusOK || !strings.Contains(body, `panelsync_http_requests_total{method="GET",route="/healthz",status="200"} 1`) {
				t.Fatalf("metrics listener: %d, body lacks the healthz request:\n%.2000s", status, body)
			}
			if status, _ := get(t, strings.TrimSuffix(metrics, "/metrics")+"/healthz"); status != http.StatusNotFound {
				t.Errorf("the metrics listener serves more than /metrics: /healthz answered %d", status)
			}

			n.Stop()
			_, err := http.Get(metrics)
			if !errors.Is(err, syscall.ECONNREFUSED) {
				t.Fatalf("metrics listener after the node stopped: %v, want connection refused", err)
			}
		})
	}
}

func TestMetrics_EmptyOrOffAddress_ServesNone(t *testing.T) {
	for _, addr := range []string{"", "off"} {
		cfg := apptest.Config(t, dbtest.Backends(t)[0])
		cfg.MetricsAddr = addr
		if n := apptest.Start(t, cfg); n.App.MetricsAddr() != "" {
			t.Errorf("--metrics-addr %q: metrics served at %s", addr, n.App.MetricsAddr())
		}
	}
	cfg := apptest.Config(t, dbtest.Backends(t)[0])
	cfg.MetricsAddr = "9090"
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "--metrics-addr") {
		t.Errorf("--metrics-addr 9090: %v, want a refusal", err)
	}
}
