package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/panelsync/panelsync/app"
)

// The compose stack cannot be started here (its images cannot be pulled),
// so these tests check what can be checked without Docker: the files parse,
// every setting they pass is one the binary reads and the README documents,
// every command they run exists and accepts its arguments, every file they
// mount exists, and the proxy, Prometheus and Grafana point at the nodes
// and ports the compose file defines.

const repoRoot = "../.."

// stackEnv stands in for .env: the variables docker-compose.yml requires,
// with values of the shape the README asks for.
func stackEnv() map[string]string {
	return map[string]string{
		"MYSQL_PASSWORD":            "mysql-password",
		"MYSQL_ROOT_PASSWORD":       "mysql-root-password",
		"PANELSYNC_JWT_SECRET":      strings.Repeat("j", 64),
		"PANELSYNC_SECRET_KEY":      strings.Repeat("s", 64),
		"PANELSYNC_CODE_DIGEST_KEY": strings.Repeat("c", 64),
		"GRAFANA_ADMIN_PASSWORD":    "grafana-password",
	}
}

// sharedSettings must be the same on every node: tokens one node signs the
// other accepts, what one seals or digests the other opens or matches, and
// both work on one database and one bus.
var sharedSettings = []string{
	"PANELSYNC_JWT_SECRET", "PANELSYNC_SECRET_KEY", "PANELSYNC_CODE_DIGEST_KEY",
	"PANELSYNC_DATABASE_URL", "PANELSYNC_NATS_URL",
}

type composeFile struct {
	Services map[string]*composeService `yaml:"services"`
}

type composeService struct {
	Image       string                       `yaml:"image"`
	Build       any                          `yaml:"build"`
	Command     []string                     `yaml:"command"`
	Environment map[string]string            `yaml:"environment"`
	Healthcheck *composeHealthcheck          `yaml:"healthcheck"`
	DependsOn   map[string]composeDependency `yaml:"depends_on"`
	Ports       []string                     `yaml:"ports"`
	Volumes     []string                     `yaml:"volumes"`
}

type composeHealthcheck struct {
	Test    []string `yaml:"test"`
	Disable bool     `yaml:"disable"`
}

type composeDependency struct {
	Condition string `yaml:"condition"`
}

// stack is the compose file with its variables resolved, and the
// Dockerfile's defaults for the panelsync image.
type stack struct {
	compose    composeFile
	dockerfile dockerfile
	// edited holds files, by repository path, read as given here rather
	// than from the repository.
	edited map[string][]byte
	// ran remembers how each command line with its settings fared, so
	// that stacks loaded again do not run migrations again.
	ran map[string]error
}

func loadStack(t *testing.T, env map[string]string) stack {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(repoRoot, "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var s stack
	if err := yaml.Unmarshal(raw, &s.compose); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	if len(s.compose.Services) == 0 {
		t.Fatal("docker-compose.yml defines no services")
	}
	for name, svc := range s.compose.Services {
		for k, v := range svc.Environment {
			if svc.Environment[k], err = interpolate(v, env); err != nil {
				t.Fatalf("service %s, %s: %v", name, k, err)
			}
		}
		for i, v := range svc.Ports {
			if svc.Ports[i], err = interpolate(v, env); err != nil {
				t.Fatalf("service %s, ports: %v", name, err)
			}
		}
	}
	s.dockerfile = loadDockerfile(t)
	return s
}

// interpolateRE matches what Compose substitutes: $$, ${NAME}, and
// ${NAME:-default}, ${NAME-default}, ${NAME:?error}, ${NAME?error}.
var interpolateRE = regexp.MustCompile(`\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}`)

// interpolate resolves value as Compose does with env as the environment
// and .env; a required variable that is missing is an error.
func interpolate(value string, env map[string]string) (string, error) {
	var missing error
	out := interpolateRE.ReplaceAllStringFunc(value, func(m string) string {
		if m == "$$" {
			return "$"
		}
		sub := interpolateRE.FindStringSubmatch(m)
		name, op, arg := sub[1], sub[2], sub[3]
		v, set := env[name]
		empty := !set || (strings.HasPrefix(op, ":") && v == "")
		switch {
		case !empty:
			return v
		case strings.HasSuffix(op, "-"):
			return arg
		case strings.HasSuffix(op, "?"):
			missing = fmt.Errorf("required variable %s is missing: %s", name, arg)
		}
		return v
	})
	return out, missing
}

// panelsyncServices are the services that run the image built from the
// Dockerfile, by name.
func (s stack) panelsyncServices() []string {
	var names []string
	for name, svc := range s.compose.Services {
		if svc.Build != nil {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names
}

// nodes are the panelsync services that serve.
func (s stack) nodes() []string {
	var names []string
	for _, name := range s.panelsyncServices() {
		if c := s.compose.Services[name].Command; len(c) > 0 && c[0] == "serve" {
			names = append(names, name)
		}
	}
	return names
}

// setting is what the panelsync service name sees for a variable: its
// own environment, else the image's.
func (s stack) setting(name, variable string) string {
	if v, ok := s.compose.Services[name].Environment[variable]; ok {
		return v
	}
	return s.dockerfile.env[variable]
}

// serviceWithImage returns the one service whose image starts with prefix.
func (s stack) serviceWithImage(prefix string) (string, *composeService, error) {
	var found []string
	for name, svc := range s.compose.Services {
		if strings.HasPrefix(svc.Image, prefix) {
			found = append(found, name)
		}
	}
	if len(found) != 1 {
		return "", nil, fmt.Errorf("want one service with a %s image, found %v", prefix, found)
	}
	return found[0], s.compose.Services[found[0]], nil
}

// mountSource returns the repository file or folder that service svc
// mounts at target, or at the folder holding target.
func mountSource(svc *composeService, target string) (string, bool) {
	for _, v := range svc.Volumes {
		parts := strings.Split(v, ":")
		if len(parts) < 2 || !strings.HasPrefix(parts[0], ".") {
			continue
		}
		switch {
		case parts[1] == target:
			return parts[0], true
		case strings.HasPrefix(target, parts[1]+"/"):
			return path.Join(parts[0], strings.TrimPrefix(target, parts[1]+"/")), true
		}
	}
	return "", false
}

func readRepoFile(rel string) ([]byte, error) {
	return os.ReadFile(filepath.Join(repoRoot, filepath.FromSlash(rel)))
}

// read returns a file of the stack, by repository path.
func (s stack) read(rel string) ([]byte, error) {
	if b, ok := s.edited[path.Clean(rel)]; ok {
		return b, nil
	}
	return readRepoFile(rel)
}

// edit replaces old with new in the stack's copy of a repository file.
func (s *stack) edit(t *testing.T, rel, old, new string) {
	t.Helper()
	raw, err := s.read(rel)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(raw, []byte(old)) {
		t.Fatalf("%s does not contain %q", rel, old)
	}
	if s.edited == nil {
		s.edited = map[string][]byte{}
	}
	s.edited[path.Clean(rel)] = bytes.ReplaceAll(raw, []byte(old), []byte(new))
}

func portOf(addr string) string {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return ""
	}
	return port
}

// problems lists everything wrong with the stack, so that a test can show
// that each check notices what it is for.
func (s stack) problems(t *testing.T) []string {
	var p []string
	add := func(format string, args ...any) { p = append(p, fmt.Sprintf(format, args...)) }
	p = append(p, s.serviceProblems()...)
	p = append(p, s.settingProblems()...)
	p = append(p, s.commandProblems(t)...)
	p = append(p, s.mountProblems()...)
	p = append(p, s.proxyProblems()...)
	p = append(p, s.prometheusProblems()...)
	p = append(p, s.grafanaProblems()...)
	if len(s.nodes()) < 2 {
		add("want two panelsync nodes that serve, found %v", s.nodes())
	}
	return p
}

// serviceProblems: every service has an image and a health check, and only
// a one-shot service, which the others wait to complete, goes without.
func (s stack) serviceProblems() []string {
	var p []string
	for _, name := range slices.Sorted(maps.Keys(s.compose.Services)) {
		svc := s.compose.Services[name]
		if svc.Image == "" && svc.Build == nil {
			p = append(p, fmt.Sprintf("service %s has neither image nor build", name))
		}
		hc := svc.Healthcheck
		switch {
		case hc == nil:
			p = append(p, fmt.Sprintf("service %s has no healthcheck", name))
		case hc.Disable:
			if !s.oneShot(name) {
				p = append(p, fmt.Sprintf("service %s disables its healthcheck but is not a one-shot service others wait for with service_completed_successfully", name))
			}
		case len(hc.Test) < 2 || (hc.Test[0] != "CMD" && hc.Test[0] != "CMD-SHELL"):
			p = append(p, fmt.Sprintf("service %s: healthcheck test %q is not [CMD, ...] or [CMD-SHELL, ...]", name, hc.Test))
		}
		for dep := range svc.DependsOn {
			if _, ok := s.compose.Services[dep]; !ok {
				p = append(p, fmt.Sprintf("service %s depends on %s, which does not exist", name, dep))
			}
		}
	}
	return p
}

// oneShot reports whether some service waits for name to complete and
// none waits for anything else from it.
func (s stack) oneShot(name string) bool {
	waited := false
	for _, svc := range s.compose.Services {
		if dep, ok := svc.DependsOn[name]; ok {
			if dep.Condition != "service_completed_successfully" {
				return false
			}
			waited = true
		}
	}
	return waited
}

// settingProblems: every PANELSYNC_* variable set for the image is a
// setting the binary reads and the README documents; the nodes share what
// they must and differ in their ids; at most one process migrates.
func (s stack) settingProblems() []string {
	var p []string
	add := func(format string, args ...any) { p = append(p, fmt.Sprintf(format, args...)) }
	flags := map[string]string{}
	var cfg app.Config
	for _, st := range cfg.Settings() {
		flags[st.Env] = st.Flag
	}
	readme, err := s.read("README.md")
	if err != nil {
		return []string{err.Error()}
	}
	// A row of the Configuration section's table, as app's README test
	// expects it.
	documented := func(variable string) bool {
		return bytes.Contains(readme, []byte("| `--"+flags[variable]+"` | `"+variable+"` |"))
	}
	check := func(where string, env map[string]string) {
		for _, k := range slices.Sorted(maps.Keys(env)) {
			if !strings.HasPrefix(k, "PANELSYNC_") {
				continue
			}
			switch {
			case flags[k] == "":
				add("%s sets %s, which is not a setting of panelsync", where, k)
			case !documented(k):
				add("%s sets %s, which README.md's Configuration section does not document", where, k)
			}
		}
	}
	check("Dockerfile", s.dockerfile.env)
	for _, name := range s.panelsyncServices() {
		check("service "+name, s.compose.Services[name].Environment)
	}

	nodes := s.nodes()
	ids := map[string]string{}
	for _, name := range nodes {
		id := s.setting(name, "PANELSYNC_NODE_ID")
		switch {
		case id == "":
			add("node %s sets no PANELSYNC_NODE_ID", name)
		case ids[id] != "":
			add("nodes %s and %s share the node id %q", ids[id], name, id)
		}
		ids[id] = name
		for _, k := range sharedSettings {
			if s.setting(name, k) == "" {
				add("node %s does not set %s", name, k)
			} else if s.setting(name, k) != s.setting(nodes[0], k) {
				add("nodes %s and %s differ in %s", nodes[0], name, k)
			}
		}
	}
	if len(nodes) > 1 {
		for _, name := range nodes {
			if s.setting(name, "PANELSYNC_MIGRATE_ON_START") != "false" {
				add("node %s migrates on start: nodes starting together would migrate at once; set PANELSYNC_MIGRATE_ON_START to false and run migrate up before them", name)
			}
		}
	}
	for _, name := range nodes {
		migrator := ""
		for dep, d := range s.compose.Services[name].DependsOn {
			if slices.Equal(s.compose.Services[dep].Command, []string{"migrate", "up"}) && d.Condition == "service_completed_successfully" {
				migrator = dep
			}
		}
		if migrator == "" {
			add("node %s does not wait for a migrate up service to complete successfully", name)
		} else if s.setting(migrator, "PANELSYNC_DATABASE_URL") != s.setting(name, "PANELSYNC_DATABASE_URL") {
			add("service %s migrates another database than node %s uses", migrator, name)
		}
	}
	return p
}

// commandProblems: every command line the image runs, its health check
// included, names a command of the binary that accepts those arguments
// with the service's settings.
func (s stack) commandProblems(t *testing.T) []string {
	var p []string
	add := func(format string, args ...any) { p = append(p, fmt.Sprintf(format, args...)) }
	for _, name := range s.panelsyncServices() {
		svc := s.compose.Services[name]
		env := maps.Clone(s.dockerfile.env)
		maps.Copy(env, svc.Environment)
		lines := [][]string{svc.Command}
		if len(svc.Command) == 0 {
			lines[0] = s.dockerfile.cmd
		}
		if hc := svc.Healthcheck; hc != nil && !hc.Disable && len(hc.Test) > 1 {
			if hc.Test[0] != "CMD" || hc.Test[1] != s.dockerfile.entrypoint {
				add("service %s: healthcheck %q does not run the image's binary %s", name, hc.Test, s.dockerfile.entrypoint)
			} else {
				lines = append(lines, hc.Test[2:])
			}
		}
		for _, args := range lines {
			key := fmt.Sprint(args, env)
			err, done := s.ran[key]
			if !done {
				err = checkCommandLine(t, env, args)
				if s.ran != nil {
					s.ran[key] = err
				}
			}
			if err != nil {
				add("service %s runs panelsync %s: %v", name, strings.Join(args, " "), err)
			}
		}
	}
	return p
}

// checkCommandLine runs what can be run of a command line: serve has its
// settings parsed and validated as serve does before it starts, migrate
// runs against an embedded database instead of MySQL, and ready asks a
// stand-in server.
func checkCommandLine(t *testing.T, env map[string]string, args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("no command")
	}
	if !slices.ContainsFunc(commands(), func(c command) bool { return c.name == args[0] }) {
		return fmt.Errorf("the binary has no command %q", args[0])
	}
	var out, errOut bytes.Buffer
	cenv := cmdEnv{stdout: &out, stderr: &errOut, getenv: func(k string) string { return env[k] }}
	switch args[0] {
	case "serve":
		_, fs, err := parseConfig("serve", cenv, args[1:], nil)
		if err != nil {
			return fmt.Errorf("%v %s", err, errOut.String())
		}
		if fs.NArg() > 0 {
			return fmt.Errorf("unexpected arguments %q", fs.Args())
		}
		return nil
	case "migrate":
		local := maps.Clone(env)
		delete(local, "PANELSYNC_DATABASE_URL")
		local["PANELSYNC_DATA_DIR"] = t.TempDir()
		local["PANELSYNC_LOG_LEVEL"] = "error"
		if code := run(context.Background(), args, &out, &errOut, func(k string) string { return local[k] }); code != 0 {
			return fmt.Errorf("exit %d: %s", code, errOut.String())
		}
		return nil
	case "ready":
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/readyz" {
				http.NotFound(w, r)
			}
		}))
		defer srv.Close()
		local := maps.Clone(env)
		local["PANELSYNC_ADDR"] = srv.Listener.Addr().String()
		if code := run(context.Background(), args, &out, &errOut, func(k string) string { return local[k] }); code != 0 {
			return fmt.Errorf("exit %d: %s", code, errOut.String())
		}
		return nil
	}
	return fmt.Errorf("compose_test.go has no check for command %q", args[0])
}

// mountProblems: every file or folder mounted from the repository exists.
func (s stack) mountProblems() []string {
	var p []string
	for _, name := range slices.Sorted(maps.Keys(s.compose.Services)) {
		for _, v := range s.compose.Services[name].Volumes {
			src := strings.Split(v, ":")[0]
			if !strings.HasPrefix(src, ".") && !strings.HasPrefix(src, "/") {
				continue
			}
			if _, err := os.Stat(filepath.Join(repoRoot, filepath.FromSlash(src))); err != nil {
				p = append(p, fmt.Sprintf("service %s mounts %s, which is not in the repository", name, src))
			}
		}
	}
	return p
}

// proxyProblems: the Caddyfile sends requests to every node on the port it
// listens on, only while its /readyz answers, and sets the client-address
// header the nodes read.
func (s stack) proxyProblems() []string {
	name, svc, err := s.serviceWithImage("caddy")
	if err != nil {
		return []string{err.Error()}
	}
	src, ok := mountSource(svc, "/etc/caddy/Caddyfile")
	if !ok {
		return []string{fmt.Sprintf("service %s mounts no Caddyfile from the repository", name)}
	}
	raw, err := s.read(src)
	if err != nil {
		return []string{err.Error()}
	}
	lines := caddyLines(raw)
	var p []string
	add := func(format string, args ...any) { p = append(p, fmt.Sprintf(format, args...)) }
	var upstreams []string
	for _, l := range lines {
		if len(l) > 0 && (l[0] == "reverse_proxy" || l[0] == "to") {
			for _, u := range l[1:] {
				if u != "{" {
					upstreams = append(upstreams, u)
				}
			}
		}
	}
	var want []string
	for _, node := range s.nodes() {
		want = append(want, node+":"+portOf(s.setting(node, "PANELSYNC_ADDR")))
	}
	slices.Sort(upstreams)
	if !slices.Equal(upstreams, want) {
		add("%s proxies to %v, want every node on its PANELSYNC_ADDR port: %v", src, upstreams, want)
	}
	has := func(words ...string) bool {
		return slices.ContainsFunc(lines, func(l []string) bool { return slices.Equal(l, words) })
	}
	if !has("health_uri", "/readyz") {
		add("%s does not check its upstreams' /readyz (health_uri /readyz)", src)
	}
	for _, node := range s.nodes() {
		header := s.setting(node, "PANELSYNC_PROXY_HEADER")
		if header == "" || !has("header_up", header, "{remote_host}") {
			add("node %s reads the client address from %q, which %s does not set to {remote_host}", node, header, src)
		}
	}
	published := false
	for _, port := range svc.Ports {
		parts := strings.Split(port, ":")
		published = published || has(":"+parts[len(parts)-1], "{")
	}
	if !published {
		add("service %s publishes %v, but %s listens on no published port", name, svc.Ports, src)
	}
	return p
}

// caddyLines splits a Caddyfile into lines of words, without comments.
func caddyLines(raw []byte) [][]string {
	var lines [][]string
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		if f := strings.Fields(line); len(f) > 0 {
			lines = append(lines, f)
		}
	}
	return lines
}

// prometheusConfig is the part of prometheus.yml the stack uses; a field
// outside it fails to decode, so a misspelt key is caught.
type prometheusConfig struct {
	Global struct {
		ScrapeInterval     string `yaml:"scrape_interval"`
		EvaluationInterval string `yaml:"evaluation_interval"`
	} `yaml:"global"`
	RuleFiles     []string `yaml:"rule_files"`
	ScrapeConfigs []struct {
		JobName       string `yaml:"job_name"`
		MetricsPath   string `yaml:"metrics_path"`
		StaticConfigs []struct {
			Targets []string `yaml:"targets"`
		} `yaml:"static_configs"`
	} `yaml:"scrape_configs"`
}

// prometheusProblems: prometheus.yml parses, scrapes every node's metrics
// listener at the address the node opens, and loads rule files the
// service mounts.
func (s stack) prometheusProblems() []string {
	name, svc, err := s.serviceWithImage("prom/prometheus")
	if err != nil {
		return []string{err.Error()}
	}
	var p []string
	add := func(format string, args ...any) { p = append(p, fmt.Sprintf(format, args...)) }
	configPath := "/etc/prometheus/prometheus.yml"
	for _, arg := range svc.Command {
		if v, ok := strings.CutPrefix(arg, "--config.file="); ok {
			configPath = v
		}
	}
	src, ok := mountSource(svc, configPath)
	if !ok {
		return []string{fmt.Sprintf("service %s mounts nothing from the repository at %s", name, configPath)}
	}
	raw, err := s.read(src)
	if err != nil {
		return []string{err.Error()}
	}
	var cfg prometheusConfig
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil {
		return []string{fmt.Sprintf("%s: %v", src, err)}
	}
	var targets []string
	for _, sc := range cfg.ScrapeConfigs {
		if sc.MetricsPath != "" && sc.MetricsPath != "/metrics" {
			continue
		}
		for _, st := range sc.StaticConfigs {
			targets = append(targets, st.Targets...)
		}
	}
	for _, node := range s.nodes() {
		addr := s.setting(node, "PANELSYNC_METRICS_ADDR")
		host, port, err := net.SplitHostPort(addr)
		switch {
		case err != nil || port == "":
			add("node %s serves no metrics (PANELSYNC_METRICS_ADDR %q)", node, addr)
		case host != "" && host != "0.0.0.0" && host != "::":
			add("node %s serves metrics on %s only, out of Prometheus's reach", node, addr)
		case !slices.Contains(targets, node+":"+port):
			add("%s does not scrape node %s at %s:%s (targets %v)", src, node, node, port, targets)
		}
	}
	if len(cfg.RuleFiles) == 0 {
		add("%s loads no rule files", src)
	}
	for _, rf := range cfg.RuleFiles {
		if !path.IsAbs(rf) {
			rf = path.Join(path.Dir(configPath), rf)
		}
		if _, ok := mountSource(svc, rf); !ok {
			add("%s loads %s, which service %s does not mount from the repository", src, rf, name)
		}
	}
	return p
}

// grafanaProblems: Grafana's data source is the stack's Prometheus and its
// dashboard provider reads a folder the dashboard is mounted into.
func (s stack) grafanaProblems() []string {
	name, svc, err := s.serviceWithImage("grafana/grafana")
	if err != nil {
		return []string{err.Error()}
	}
	var p []string
	add := func(format string, args ...any) { p = append(p, fmt.Sprintf(format, args...)) }
	promName, _, err := s.serviceWithImage("prom/prometheus")
	if err != nil {
		return []string{err.Error()}
	}

	dsDir, ok := mountSource(svc, "/etc/grafana/provisioning/datasources")
	if !ok {
		return []string{fmt.Sprintf("service %s mounts no data source provisioning from the repository", name)}
	}
	type datasource struct {
		Type string `yaml:"type"`
		URL  string `yaml:"url"`
	}
	var ds struct {
		Datasources []datasource `yaml:"datasources"`
	}
	if err := s.decodeYAMLFiles(dsDir, &ds); err != nil {
		return []string{err.Error()}
	}
	if !slices.Contains(ds.Datasources, datasource{Type: "prometheus", URL: "http://" + promName + ":9090"}) {
		add("%s provisions no prometheus data source at http://%s:9090", dsDir, promName)
	}

	dbDir, ok := mountSource(svc, "/etc/grafana/provisioning/dashboards")
	if !ok {
		return append(p, fmt.Sprintf("service %s mounts no dashboard provisioning from the repository", name))
	}
	var prov struct {
		Providers []struct {
			Options struct {
				Path string `yaml:"path"`
			} `yaml:"options"`
		} `yaml:"providers"`
	}
	if err := s.decodeYAMLFiles(dbDir, &prov); err != nil {
		return append(p, err.Error())
	}
	const dashboard = "deploy/grafana/panelsync.json"
	loaded := false
	for _, pr := range prov.Providers {
		src, ok := mountSource(svc, pr.Options.Path+"/panelsync.json")
		loaded = loaded || (ok && path.Clean(src) == dashboard)
	}
	if !loaded {
		add("no dashboard provider in %s reads a folder that service %s mounts %s into", dbDir, name, dashboard)
	}
	return p
}

// decodeYAMLFiles decodes every .yml and .yaml file of the repository
// folder dir into v, each adding to what the others decoded.
func (s stack) decodeYAMLFiles(dir string, v any) error {
	entries, err := os.ReadDir(filepath.Join(repoRoot, filepath.FromSlash(dir)))
	if err != nil {
		return err
	}
	for _, e := range entries {
		if ext := path.Ext(e.Name()); ext != ".yml" && ext != ".yaml" {
			continue
		}
		raw, err := s.read(path.Join(dir, e.Name()))
		if err != nil {
			return err
		}
		if err := yaml.Unmarshal(raw, v); err != nil {
			return fmt.Errorf("%s/%s: %w", dir, e.Name(), err)
		}
	}
	return nil
}

// dockerfile is what the compose file relies on in the Dockerfile: the
// binary it installs and runs, its default command and its settings.
type dockerfile struct {
	entrypoint string
	cmd        []string
	env        map[string]string
}

func loadDockerfile(t *testing.T) dockerfile {
	t.Helper()
	raw, err := readRepoFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	// Continuation lines are joined so that each instruction is one line.
	text := strings.ReplaceAll(string(raw), "\\\n", " ")
	d := dockerfile{env: map[string]string{}}
	built, installed := "", ""
	for _, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		switch strings.ToUpper(f[0]) {
		case "RUN":
			if m := regexp.MustCompile(`go build .*-o (\S+) (\S+)`).FindStringSubmatch(line); m != nil && m[2] == "./cmd/panelsync" {
				built = m[1]
			}
		case "COPY":
			if len(f) >= 4 && f[len(f)-2] == built {
				installed = f[len(f)-1]
			}
		case "ENV":
			for _, kv := range f[1:] {
				if k, v, ok := strings.Cut(kv, "="); ok {
					d.env[k] = v
				}
			}
		case "ENTRYPOINT":
			var ep []string
			if err := yaml.Unmarshal([]byte(strings.TrimSpace(line[len(f[0]):])), &ep); err != nil || len(ep) != 1 {
				t.Fatalf("Dockerfile: ENTRYPOINT %q is not [\"binary\"]", line)
			}
			d.entrypoint = ep[0]
		case "CMD":
			if err := yaml.Unmarshal([]byte(strings.TrimSpace(line[len(f[0]):])), &d.cmd); err != nil {
				t.Fatalf("Dockerfile: CMD %q is not a list", line)
			}
		}
	}
	if built == "" || installed == "" || installed != d.entrypoint {
		t.Fatalf("Dockerfile: builds ./cmd/panelsync to %q, installs it at %q, runs %q: want one binary built, installed and run", built, installed, d.entrypoint)
	}
	return d
}

func TestCompose_StackIsConsistentWithTheBinaryAndItsFiles(t *testing.T) {
	s := loadStack(t, stackEnv())
	for _, p := range s.problems(t) {
		t.Error(p)
	}
}

func TestCompose_SecretsAreRequiredFromDotEnv(t *testing.T) {
	for _, required := range []string{"MYSQL_PASSWORD", "MYSQL_ROOT_PASSWORD", "PANELSYNC_JWT_SECRET", "PANELSYNC_SECRET_KEY", "PANELSYNC_CODE_DIGEST_KEY", "GRAFANA_ADMIN_PASSWORD"} {
		env := stackEnv()
		delete(env, required)
		raw, err := os.ReadFile(filepath.Join(repoRoot, "docker-compose.yml"))
		if err != nil {
			t.Fatal(err)
		}
		var c composeFile
		if err := yaml.Unmarshal(raw, &c); err != nil {
			t.Fatal(err)
		}
		failed := false
		for _, svc := range c.Services {
			for _, v := range svc.Environment {
				if _, err := interpolate(v, env); err != nil && strings.Contains(err.Error(), required+" in .env") {
					failed = true
				}
			}
		}
		if !failed {
			t.Errorf("docker-compose.yml starts without %s instead of saying to set it in .env", required)
		}
	}
}

const (
	caddyfile     = "deploy/caddy/Caddyfile"
	prometheusYML = "deploy/prometheus/prometheus.yml"
)

// TestCompose_ChecksNoticeWhatTheyAreFor breaks the stack one way at a time
// and expects the checks to say so.
func TestCompose_ChecksNoticeWhatTheyAreFor(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(s *stack)
		want   string
	}{
		{"unknown variable", func(s *stack) {
			s.compose.Services["node-1"].Environment["PANELSYNC_FROBNICATE"] = "1"
		}, "PANELSYNC_FROBNICATE, which is not a setting"},
		{"invalid value", func(s *stack) {
			s.compose.Services["node-2"].Environment["PANELSYNC_RUN_LEASE"] = "soon"
		}, "PANELSYNC_RUN_LEASE"},
		{"unknown command", func(s *stack) {
			s.compose.Services["node-1"].Command = []string{"serve-forever"}
		}, `no command "serve-forever"`},
		{"unknown flag", func(s *stack) {
			s.compose.Services["node-2"].Command = []string{"serve", "--no-such-flag"}
		}, "no-such-flag"},
		{"unknown migrate direction", func(s *stack) {
			s.compose.Services["migrate"].Command = []string{"migrate", "sideways"}
		}, "runs panelsync migrate sideways"},
		{"no healthcheck", func(s *stack) {
			s.compose.Services["nats"].Healthcheck = nil
		}, "service nats has no healthcheck"},
		{"healthcheck disabled on a node", func(s *stack) {
			s.compose.Services["node-1"].Healthcheck = &composeHealthcheck{Disable: true}
		}, "service node-1 disables its healthcheck"},
		{"missing mount", func(s *stack) {
			s.compose.Services["proxy"].Volumes = append(s.compose.Services["proxy"].Volumes, "./deploy/caddy/missing.conf:/etc/caddy/extra:ro")
		}, "mounts ./deploy/caddy/missing.conf"},
		{"node ids alike", func(s *stack) {
			s.compose.Services["node-2"].Environment["PANELSYNC_NODE_ID"] = s.compose.Services["node-1"].Environment["PANELSYNC_NODE_ID"]
		}, "share the node id"},
		{"secrets differ", func(s *stack) {
			s.compose.Services["node-2"].Environment["PANELSYNC_JWT_SECRET"] = strings.Repeat("x", 40)
		}, "differ in PANELSYNC_JWT_SECRET"},
		{"nodes migrate", func(s *stack) {
			s.compose.Services["node-1"].Environment["PANELSYNC_MIGRATE_ON_START"] = "true"
		}, "node node-1 migrates on start"},
		{"metrics on loopback", func(s *stack) {
			s.compose.Services["node-1"].Environment["PANELSYNC_METRICS_ADDR"] = "127.0.0.1:9090"
		}, "out of Prometheus's reach"},
		{"metrics port moved", func(s *stack) {
			s.compose.Services["node-2"].Environment["PANELSYNC_METRICS_ADDR"] = ":9191"
		}, "does not scrape node node-2 at node-2:9191"},
		{"API port moved", func(s *stack) {
			s.compose.Services["node-2"].Environment["PANELSYNC_ADDR"] = ":8081"
		}, "want every node on its PANELSYNC_ADDR port"},
		{"proxy header the proxy does not set", func(s *stack) {
			s.compose.Services["node-1"].Environment["PANELSYNC_PROXY_HEADER"] = "X-Forwarded-For"
		}, `reads the client address from "X-Forwarded-For"`},
		{"variable not in the README", func(s *stack) {
			s.edit(t, "README.md", "| `--node-id` | `PANELSYNC_NODE_ID` |", "| `--node-id` | `NODE_ID` |")
		}, "PANELSYNC_NODE_ID, which README.md's Configuration section does not document"},
		{"proxy to one node", func(s *stack) {
			s.edit(t, caddyfile, "node-1:8080 node-2:8080", "node-1:8080")
		}, "proxies to [node-1:8080]"},
		{"proxy without health checks", func(s *stack) {
			s.edit(t, caddyfile, "health_uri /readyz", "health_uri /healthz")
		}, "does not check its upstreams' /readyz"},
		{"prometheus.yml misspelt", func(s *stack) {
			s.edit(t, prometheusYML, "scrape_configs:", "scrape_config:")
		}, "field scrape_config not found"},
		{"prometheus scrapes one node", func(s *stack) {
			s.edit(t, prometheusYML, "- node-2:9090", "")
		}, "does not scrape node node-2 at node-2:9090"},
		{"prometheus without alerts", func(s *stack) {
			s.edit(t, prometheusYML, "/etc/prometheus/alerts.yml", "/etc/prometheus/rules.yml")
		}, "loads /etc/prometheus/rules.yml, which service prometheus does not mount"},
		{"grafana on another data source", func(s *stack) {
			s.edit(t, "deploy/grafana/provisioning/datasources/prometheus.yml", "http://prometheus:9090", "http://localhost:9090")
		}, "provisions no prometheus data source at http://prometheus:9090"},
		{"grafana reads another folder", func(s *stack) {
			s.edit(t, "deploy/grafana/provisioning/dashboards/panelsync.yml", "path: /etc/grafana/dashboards", "path: /var/lib/grafana/dashboards")
		}, "no dashboard provider"},
	}
	ran := map[string]error{}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := loadStack(t, stackEnv())
			s.ran = ran
			tc.mutate(&s)
			problems := s.problems(t)
			if !slices.ContainsFunc(problems, func(p string) bool { return strings.Contains(p, tc.want) }) {
				t.Errorf("no problem mentions %q; found:\n%s", tc.want, strings.Join(problems, "\n"))
			}
		})
	}
}
