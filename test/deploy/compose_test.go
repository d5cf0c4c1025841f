package deploy

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
	"gopkg.in/yaml.v3"
)

const recoImage = "toutiao-reco/reco:dev"

// loadCompose reads docker-compose.yml with the compose-spec loader, the one
// `docker compose` itself uses: schema validation (unknown keys are errors),
// interpolation, anchors and merge keys, relative paths resolved.
func loadCompose(t *testing.T) *types.Project {
	t.Helper()
	abs, err := filepath.Abs(root)
	if err != nil {
		t.Fatal(err)
	}
	project, err := loader.LoadWithContext(context.Background(), types.ConfigDetails{
		WorkingDir:  abs,
		ConfigFiles: []types.ConfigFile{{Filename: filepath.Join(abs, "docker-compose.yml")}},
		Environment: types.Mapping{},
	})
	if err != nil {
		t.Fatalf("docker-compose.yml does not load: %v", err)
	}
	return project
}

func composeEnv(m types.MappingWithEquals) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		if v != nil {
			out[k] = *v
		}
	}
	return out
}

// oneShot is a service that runs to completion (bootstrap, demo).
func oneShot(s types.ServiceConfig) bool { return s.Restart == types.RestartPolicyNo }

func TestComposeFile(t *testing.T) {
	p := loadCompose(t)
	want := []string{"bootstrap", "cache", "demo", "grafana", "hbase", "kafka", "nearline", "prometheus", "recall", "recocenter", "redis", "routing", "sort"}
	if got := p.ServiceNames(); !slices.Equal(sortedCopy(got), want) {
		t.Fatalf("services = %v, want %v", sortedCopy(got), want)
	}

	t.Run("the image holds every state directory a volume is mounted on", func(t *testing.T) {
		// A named volume takes the ownership of the image's directory; one
		// the image lacks is created root's, where reco (uid 65532) cannot
		// write its spill.
		var made []string
		for _, r := range stages(parseDockerfile(t, "Dockerfile"))[0].all("RUN") {
			if strings.Contains(r.args, "mkdir") {
				made = append(made, strings.Fields(r.args)...)
			}
		}
		for name, s := range p.Services {
			if s.Image != "toutiao-reco/reco:dev" {
				continue
			}
			for _, v := range s.Volumes {
				if v.Type == types.VolumeTypeVolume && strings.HasPrefix(v.Target, "/var/lib/reco/") && !slices.Contains(made, "/out"+v.Target) {
					t.Errorf("%s mounts a volume on %s, which the Dockerfile does not create", name, v.Target)
				}
			}
		}
	})

	t.Run("healthchecks and start order", func(t *testing.T) {
		for name, s := range p.Services {
			hc := s.HealthCheck
			switch {
			case oneShot(s):
				if hc == nil || !hc.Disable {
					t.Errorf("%s runs once: its healthcheck should be disabled, not inherited from the image", name)
				}
			case hc == nil || hc.Disable || len(hc.Test) < 2:
				t.Errorf("%s has no healthcheck", name)
			case hc.Interval == nil || hc.Timeout == nil || hc.Retries == nil:
				t.Errorf("%s healthcheck lacks interval, timeout or retries: %+v", name, hc)
			}
			for dep, d := range s.DependsOn {
				target, ok := p.Services[dep]
				switch {
				case !ok:
					t.Errorf("%s depends on %s, which is not a service", name, dep)
				case oneShot(target) && d.Condition != types.ServiceConditionCompletedSuccessfully:
					t.Errorf("%s depends on one-shot %s with %q, want %s", name, dep, d.Condition, types.ServiceConditionCompletedSuccessfully)
				case !oneShot(target) && d.Condition != types.ServiceConditionHealthy:
					t.Errorf("%s depends on %s with %q, want %s", name, dep, d.Condition, types.ServiceConditionHealthy)
				}
			}
		}
		// Every process that talks to a peer waits for it, and every reco process
		// waits (directly or through a peer) for the tables and demo data.
		for _, name := range services {
			for _, peer := range peers[name] {
				if _, ok := p.Services[name].DependsOn[peer]; !ok {
					t.Errorf("%s calls %s but does not depend on it", name, peer)
				}
			}
			closure := dependsClosure(p, name)
			for _, dep := range []string{"bootstrap", "demo", "redis", "hbase"} {
				if !closure[dep] {
					t.Errorf("%s starts without waiting for %s", name, dep)
				}
			}
		}
		if !dependsClosure(p, "grafana")["prometheus"] {
			t.Error("grafana does not wait for prometheus")
		}
		// The log's users (served ids, readers' actions) share the kafka
		// service and wait for it; the appenders spill to a named volume of
		// their own while it does not answer (not the container's layer, and
		// one process per directory).
		broker := kafkaBroker(t, p.Services["kafka"])
		spillOwner := map[string]string{}
		for _, name := range logUsers {
			s := p.Services[name]
			env := composeEnv(s.Environment)
			if _, ok := s.DependsOn["kafka"]; !ok || env["RECO_STORAGE_LOG_BACKEND"] != "kafka" || env["RECO_STORAGE_LOG_KAFKA_BROKERS"] != broker {
				t.Errorf("%s: log backend %q, brokers %q, depends on kafka %v; want the kafka service at %s", name, env["RECO_STORAGE_LOG_BACKEND"], env["RECO_STORAGE_LOG_KAFKA_BROKERS"], s.DependsOn, broker)
			}
			dir := env["RECO_STORAGE_LOG_KAFKA_SPILL_DIR"]
			if dir == "" && !slices.Contains(logAppenders, name) {
				continue
			}
			i := slices.IndexFunc(s.Volumes, func(v types.ServiceVolumeConfig) bool { return v.Type == types.VolumeTypeVolume && v.Target == dir })
			if dir == "" || i < 0 {
				t.Errorf("%s: spill dir %q is not a named volume", name, dir)
				continue
			}
			if other, taken := spillOwner[s.Volumes[i].Source]; taken {
				t.Errorf("%s and %s spill to the same volume %s: one process per directory", other, name, s.Volumes[i].Source)
			}
			spillOwner[s.Volumes[i].Source] = name
		}
	})

	t.Run("only routing is published", func(t *testing.T) {
		for _, name := range services {
			ports := p.Services[name].Ports
			if name != "routing" && len(ports) > 0 {
				t.Errorf("%s publishes %+v: only routing's ports are for clients (nearline's are the operators', inside the network)", name, ports)
			}
			for _, pc := range ports {
				if pc.HostIP != "127.0.0.1" {
					t.Errorf("%s publishes %s:%s on all interfaces, want 127.0.0.1", name, pc.HostIP, pc.Published)
				}
			}
		}
	})

	t.Run("reco services", func(t *testing.T) {
		strategies := map[string]string{}
		grpcPort := map[string]string{}
		for _, name := range append([]string{"bootstrap", "demo"}, services...) {
			s := p.Services[name]
			where := "compose service " + name
			if s.Image != recoImage || s.Build == nil || s.Build.Context == "" {
				t.Errorf("%s: image %q, build %+v; want %s built from the Dockerfile", where, s.Image, s.Build, recoImage)
			}
			// The strategies file each container mounts, read from the repository.
			for _, v := range s.Volumes {
				if v.Type == types.VolumeTypeBind {
					if _, err := os.Stat(v.Source); err != nil {
						t.Errorf("%s mounts %s, which does not exist: %v", where, v.Source, err)
					}
					strategies[v.Target] = v.Source
				}
			}
			e := composeEnv(s.Environment)
			cfg, _ := checkConfigEnv(t, where, e, strategies)
			if s.StopGracePeriod == nil || time.Duration(*s.StopGracePeriod) <= stopTime(cfg) {
				t.Errorf("%s: stop_grace_period %v must exceed the lame duck (%v), the drain (%v) and the metrics shutdown (1s)", where, s.StopGracePeriod, cfg.Server.LameDuck, cfg.Server.DrainTimeout)
			}
			if name == "bootstrap" || name == "demo" {
				continue
			}
			if got := []string(s.Command); !slices.Equal(got, []string{"serve", "--target=" + name}) {
				t.Errorf("%s: command %q, want serve --target=%s", where, got, name)
			}
			if cfg.Storage.Tables != "hbase" || cfg.Storage.Sets != "redis" || cfg.Storage.HBase.ThriftAddr != "hbase:9090" || !slices.Equal(cfg.Storage.Redis.Addrs, []string{"redis:6379"}) {
				t.Errorf("%s: storage %+v, want the compose hbase and redis", where, cfg.Storage)
			}
			host, port := hostPort(t, where, e["RECO_SERVER_GRPC_ADDR"])
			if host != "0.0.0.0" {
				t.Errorf("%s: RECO_SERVER_GRPC_ADDR=%s must listen on all interfaces, or peers cannot reach it", where, e["RECO_SERVER_GRPC_ADDR"])
			}
			grpcPort[name] = port
			h, mport := hostPort(t, where, e["RECO_SERVER_METRICS_ADDR"])
			if h != "0.0.0.0" {
				t.Errorf("%s: RECO_SERVER_METRICS_ADDR=%s is not reachable by prometheus", where, e["RECO_SERVER_METRICS_ADDR"])
			}
			if port != grpcPorts[name] || mport != metricsPorts[name] {
				t.Errorf("%s listens on %s (gRPC) and %s (metrics), want %s and %s as every deployment", where, port, mport, grpcPorts[name], metricsPorts[name])
			}
			if got := []string(s.HealthCheck.Test); !slices.Equal(got, []string{"CMD", "/usr/local/bin/reco", "health"}) {
				t.Errorf("%s: healthcheck %q, want reco health (it checks RECO_SERVER_GRPC_ADDR)", where, got)
			}
			if want, ok := httpServers[name]; ok {
				if h, port := hostPort(t, where, cfg.Server.HTTPAddr); h != "0.0.0.0" || port != want {
					t.Errorf("%s: server.http_addr %s, want 0.0.0.0:%s", where, cfg.Server.HTTPAddr, want)
				}
			}
		}
		// Every peer address names the compose service and the port it listens on.
		for _, name := range services {
			e := composeEnv(p.Services[name].Environment)
			for peer, key := range clientEnv {
				host, port := hostPort(t, name+" "+key, e[key])
				if host != peer || port != grpcPort[peer] {
					t.Errorf("%s: %s=%s, want %s:%s", name, key, e[key], peer, grpcPort[peer])
				}
			}
		}
		if strategies["/etc/reco/strategies.yaml"] == "" {
			t.Error("no service mounts the strategies file")
		}
	})

	t.Run("prometheus scrapes every service", func(t *testing.T) {
		var want []string
		for _, name := range services {
			_, port := hostPort(t, name, composeEnv(p.Services[name].Environment)["RECO_SERVER_METRICS_ADDR"])
			want = append(want, name+"="+name+":"+port)
		}
		got := scrapeTargets(t)
		if !slices.Equal(sortedCopy(got), sortedCopy(want)) {
			t.Errorf("prometheus.yml jobs = %v, want %v", sortedCopy(got), sortedCopy(want))
		}
		mounts := map[string]string{}
		for _, v := range p.Services["prometheus"].Volumes {
			mounts[v.Target] = v.Source
		}
		if mounts["/etc/prometheus/prometheus.yml"] != abs(t, "deploy/prometheus/prometheus.yml") {
			t.Error("prometheus does not mount deploy/prometheus/prometheus.yml")
		}
		// The rule files prometheus.yml names are mounted from deploy/prometheus.
		for _, f := range ruleFiles(t) {
			if mounts[f] != abs(t, "deploy/prometheus/"+filepath.Base(f)) {
				t.Errorf("prometheus.yml loads rules from %s, where compose mounts %q, not deploy/prometheus/%s", f, mounts[f], filepath.Base(f))
			}
		}
	})

	t.Run("kafka answers its healthcheck as a broker", func(t *testing.T) {
		// A real request to the broker (what the reco processes will make),
		// not a port check, on the listener the others reach.
		k := p.Services["kafka"]
		test := []string(k.HealthCheck.Test)
		broker := kafkaBroker(t, k)
		_, port := hostPort(t, "kafka", broker)
		i := slices.Index(test, "--bootstrap-server")
		if len(test) < 2 || test[0] != "CMD" || !slices.Contains([]string{"/opt/kafka/bin/kafka-broker-api-versions.sh", "/opt/kafka/bin/kafka-topics.sh"}, test[1]) || i < 0 || i+1 >= len(test) || test[i+1] != "localhost:"+port {
			t.Errorf("kafka healthcheck %q, want the image's kafka-broker-api-versions.sh (or kafka-topics.sh) against localhost:%s", test, port)
		}
	})

	t.Run("grafana provisioning", func(t *testing.T) {
		mounts := map[string]string{}
		for _, v := range p.Services["grafana"].Volumes {
			mounts[v.Target] = v.Source
		}
		if mounts["/etc/grafana/provisioning"] != abs(t, "deploy/grafana/provisioning") {
			t.Errorf("grafana mounts %v, want deploy/grafana/provisioning on /etc/grafana/provisioning", mounts)
		}
		var provider struct {
			APIVersion int `yaml:"apiVersion"`
			Providers  []struct {
				Name                  string `yaml:"name"`
				Folder                string `yaml:"folder"`
				Type                  string `yaml:"type"`
				DisableDeletion       bool   `yaml:"disableDeletion"`
				AllowUIUpdates        bool   `yaml:"allowUiUpdates"`
				UpdateIntervalSeconds int    `yaml:"updateIntervalSeconds"`
				Options               struct {
					Path                      string `yaml:"path"`
					FoldersFromFilesStructure bool   `yaml:"foldersFromFilesStructure"`
				} `yaml:"options"`
			} `yaml:"providers"`
		}
		decodeStrict(t, "deploy/grafana/provisioning/dashboards/reco.yaml", &provider)
		if len(provider.Providers) != 1 || provider.Providers[0].Type != "file" {
			t.Fatalf("dashboard providers = %+v, want one file provider", provider.Providers)
		}
		if path := provider.Providers[0].Options.Path; mounts[path] != abs(t, "deploy/grafana/dashboards") {
			t.Errorf("the dashboard provider reads %s, where grafana mounts %q, not deploy/grafana/dashboards", path, mounts[path])
		}
		home := composeEnv(p.Services["grafana"].Environment)["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
		if rel, err := filepath.Rel(provider.Providers[0].Options.Path, home); err != nil || strings.HasPrefix(rel, "..") {
			t.Errorf("home dashboard %s is outside the provisioned %s", home, provider.Providers[0].Options.Path)
		} else if _, err := os.Stat(repoPath("deploy/grafana/dashboards", rel)); err != nil {
			t.Errorf("home dashboard: %v", err)
		}
		var ds struct {
			APIVersion  int `yaml:"apiVersion"`
			Datasources []struct {
				Name      string `yaml:"name"`
				UID       string `yaml:"uid"`
				Type      string `yaml:"type"`
				Access    string `yaml:"access"`
				URL       string `yaml:"url"`
				IsDefault bool   `yaml:"isDefault"`
				Editable  bool   `yaml:"editable"`
			} `yaml:"datasources"`
		}
		decodeStrict(t, "deploy/grafana/provisioning/datasources/prometheus.yaml", &ds)
		if len(ds.Datasources) != 1 || ds.Datasources[0].UID != dashboardDatasourceUID || ds.Datasources[0].URL != "http://prometheus:9090" {
			t.Errorf("datasources = %+v, want uid %s at http://prometheus:9090", ds.Datasources, dashboardDatasourceUID)
		}
	})

	t.Run("images build from files that exist", func(t *testing.T) {
		for name, s := range p.Services {
			if s.Build == nil {
				continue
			}
			if _, err := os.Stat(filepath.Join(s.Build.Context, s.Build.Dockerfile)); err != nil {
				t.Errorf("%s builds from %s: %v", name, s.Build.Dockerfile, err)
			}
		}
	})
}

func dependsClosure(p *types.Project, name string) map[string]bool {
	seen := map[string]bool{}
	var walk func(string)
	walk = func(n string) {
		for dep := range p.Services[n].DependsOn {
			if !seen[dep] {
				seen[dep] = true
				walk(dep)
			}
		}
	}
	walk(name)
	return seen
}

func sortedCopy(s []string) []string {
	c := slices.Clone(s)
	slices.Sort(c)
	return c
}

func abs(t *testing.T, rel string) string {
	t.Helper()
	a, err := filepath.Abs(repoPath(rel))
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// decodeStrict decodes a YAML file of the repository, rejecting unknown keys.
func decodeStrict(t *testing.T, rel string, v any) {
	t.Helper()
	dec := yaml.NewDecoder(bytes.NewReader(readRepoFile(t, rel)))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: %v", rel, err)
	}
}

// prometheusConfig is the part of Prometheus's configuration the deployments
// use; decoding into it strictly catches a misspelt key.
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
			Targets []string          `yaml:"targets"`
			Labels  map[string]string `yaml:"labels"`
		} `yaml:"static_configs"`
	} `yaml:"scrape_configs"`
}

// ruleFiles lists the rule files deploy/prometheus/prometheus.yml loads, as
// paths inside the prometheus container.
func ruleFiles(t *testing.T) []string {
	t.Helper()
	var cfg prometheusConfig
	decodeStrict(t, "deploy/prometheus/prometheus.yml", &cfg)
	return cfg.RuleFiles
}

// scrapeTargets lists deploy/prometheus/prometheus.yml's jobs as job=target.
func scrapeTargets(t *testing.T) []string {
	t.Helper()
	var cfg prometheusConfig
	decodeStrict(t, "deploy/prometheus/prometheus.yml", &cfg)
	for _, d := range []string{cfg.Global.ScrapeInterval, cfg.Global.EvaluationInterval} {
		if _, err := time.ParseDuration(d); err != nil {
			t.Errorf("prometheus.yml: interval %q: %v", d, err)
		}
	}
	var out []string
	for _, sc := range cfg.ScrapeConfigs {
		if sc.MetricsPath != "" && sc.MetricsPath != "/metrics" {
			t.Errorf("job %s scrapes %s; reco serves /metrics", sc.JobName, sc.MetricsPath)
		}
		for _, st := range sc.StaticConfigs {
			for _, target := range st.Targets {
				out = append(out, sc.JobName+"="+target)
			}
		}
	}
	return out
}

// kafkaBroker is where the compose kafka service tells clients to reach it
// (its PLAINTEXT advertised listener), after checking that it listens there.
func kafkaBroker(t *testing.T, k types.ServiceConfig) string {
	t.Helper()
	env := composeEnv(k.Environment)
	listener := func(key string) string {
		for _, l := range strings.Split(env[key], ",") {
			if rest, ok := strings.CutPrefix(l, "PLAINTEXT://"); ok {
				return rest
			}
		}
		t.Errorf("kafka: %s=%q has no PLAINTEXT listener", key, env[key])
		return ""
	}
	advertised := listener("KAFKA_ADVERTISED_LISTENERS")
	host, port := hostPort(t, "kafka advertised listener", advertised)
	if _, lport := hostPort(t, "kafka listener", listener("KAFKA_LISTENERS")); lport != port || host != "kafka" {
		t.Errorf("kafka advertises %s but listens on port %s: want the service name and its listener's port", advertised, lport)
	}
	return advertised
}
