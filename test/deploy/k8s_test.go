package deploy

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	sigsyaml "sigs.k8s.io/yaml"
)

// manifests are the objects of deploy/k8s, each decoded strictly into its
// Kubernetes API type: a misspelt or misplaced field is an error, as with
// `kubectl apply --validate=strict`.
type manifests struct {
	deployments  map[string]*appsv1.Deployment
	services     map[string]*corev1.Service
	configMaps   map[string]*corev1.ConfigMap
	pdbs         map[string]*policyv1.PodDisruptionBudget
	hpas         map[string]*autoscalingv2.HorizontalPodAutoscaler
	jobs         map[string]*batchv1.Job
	netpols      map[string]*networkingv1.NetworkPolicy
	accounts     map[string]*corev1.ServiceAccount
	files        []string
	fileOfObject map[string]string
}

var docSeparator = regexp.MustCompile(`(?m)^---[ \t]*$`)

func loadManifests(t *testing.T) manifests {
	t.Helper()
	m := manifests{
		deployments: map[string]*appsv1.Deployment{}, services: map[string]*corev1.Service{},
		configMaps: map[string]*corev1.ConfigMap{}, pdbs: map[string]*policyv1.PodDisruptionBudget{},
		hpas: map[string]*autoscalingv2.HorizontalPodAutoscaler{}, jobs: map[string]*batchv1.Job{},
		netpols: map[string]*networkingv1.NetworkPolicy{}, accounts: map[string]*corev1.ServiceAccount{},
		fileOfObject: map[string]string{},
	}
	paths, err := filepath.Glob(repoPath("deploy/k8s/*.yaml"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no manifests in deploy/k8s: %v", err)
	}
	for _, path := range paths {
		name := filepath.Base(path)
		if name == "kustomization.yaml" {
			continue
		}
		m.files = append(m.files, name)
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for i, doc := range docSeparator.Split(string(b), -1) {
			if strings.TrimSpace(stripComments(doc)) == "" {
				continue
			}
			where := fmt.Sprintf("%s document %d", name, i+1)
			var tm metav1.TypeMeta
			if err := sigsyaml.Unmarshal([]byte(doc), &tm); err != nil {
				t.Fatalf("%s: %v", where, err)
			}
			var obj interface{ GetName() string }
			switch tm.APIVersion + "/" + tm.Kind {
			case "apps/v1/Deployment":
				obj = decodeInto(t, where, doc, m.deployments, &appsv1.Deployment{})
			case "v1/Service":
				obj = decodeInto(t, where, doc, m.services, &corev1.Service{})
			case "v1/ConfigMap":
				obj = decodeInto(t, where, doc, m.configMaps, &corev1.ConfigMap{})
			case "policy/v1/PodDisruptionBudget":
				obj = decodeInto(t, where, doc, m.pdbs, &policyv1.PodDisruptionBudget{})
			case "autoscaling/v2/HorizontalPodAutoscaler":
				obj = decodeInto(t, where, doc, m.hpas, &autoscalingv2.HorizontalPodAutoscaler{})
			case "batch/v1/Job":
				obj = decodeInto(t, where, doc, m.jobs, &batchv1.Job{})
			case "networking.k8s.io/v1/NetworkPolicy":
				obj = decodeInto(t, where, doc, m.netpols, &networkingv1.NetworkPolicy{})
			case "v1/ServiceAccount":
				obj = decodeInto(t, where, doc, m.accounts, &corev1.ServiceAccount{})
			default:
				t.Fatalf("%s: unexpected kind %s %s", where, tm.APIVersion, tm.Kind)
			}
			key := tm.Kind + "/" + obj.GetName()
			if prev, dup := m.fileOfObject[key]; dup || obj.GetName() == "" {
				t.Errorf("%s: %s is declared twice (also in %s) or has no name", where, key, prev)
			}
			m.fileOfObject[key] = name
		}
	}
	return m
}

// stripComments drops whole-line comments: '#' (YAML) and ';' (supervisord).
func stripComments(doc string) string {
	var b strings.Builder
	for _, l := range strings.Split(doc, "\n") {
		if l := strings.TrimSpace(l); !strings.HasPrefix(l, "#") && !strings.HasPrefix(l, ";") {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

// decodeInto decodes doc strictly into o and files it under its name.
func decodeInto[T interface{ GetName() string }](t *testing.T, where, doc string, objects map[string]T, o T) T {
	t.Helper()
	decodeObject(t, where, doc, o)
	objects[o.GetName()] = o
	return o
}

func decodeObject(t *testing.T, where, doc string, into any) {
	t.Helper()
	if err := sigsyaml.UnmarshalStrict([]byte(doc), into); err != nil {
		t.Fatalf("%s does not decode strictly: %v", where, err)
	}
}

// podEnv is a container's environment as the pod sees it: its ConfigMaps
// (envFrom), then its own env, which wins.
func (m manifests) podEnv(t *testing.T, where string, c corev1.Container) map[string]string {
	env := map[string]string{}
	for _, from := range c.EnvFrom {
		if from.ConfigMapRef == nil {
			t.Errorf("%s: envFrom %+v: only ConfigMaps are expected", where, from)
			continue
		}
		cm, ok := m.configMaps[from.ConfigMapRef.Name]
		if !ok {
			t.Errorf("%s: envFrom names ConfigMap %s, which deploy/k8s does not declare", where, from.ConfigMapRef.Name)
			continue
		}
		for k, v := range cm.Data {
			env[k] = v
		}
	}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			env[e.Name] = e.Value
		case strings.HasPrefix(e.Name, "RECO_"):
			t.Errorf("%s: %s comes from %+v; configuration values are set literally or from reco-env", where, e.Name, e.ValueFrom)
		}
	}
	return env
}

// mountedFiles maps every file a pod sees through a ConfigMap volume to a local
// copy of its content, so the configuration can be loaded as the pod would.
func (m manifests) mountedFiles(t *testing.T, where string, spec corev1.PodSpec, c corev1.Container) map[string]string {
	files := map[string]string{}
	for _, vm := range c.VolumeMounts {
		i := slices.IndexFunc(spec.Volumes, func(v corev1.Volume) bool { return v.Name == vm.Name })
		if i < 0 {
			t.Errorf("%s: volumeMount %s has no volume", where, vm.Name)
			continue
		}
		v := spec.Volumes[i]
		if v.ConfigMap == nil {
			continue
		}
		cm, ok := m.configMaps[v.ConfigMap.Name]
		if !ok {
			if v.ConfigMap.Optional == nil || !*v.ConfigMap.Optional {
				t.Errorf("%s: volume %s needs ConfigMap %s, which deploy/k8s does not declare", where, v.Name, v.ConfigMap.Name)
			}
			continue
		}
		for k, content := range cm.Data {
			local := filepath.Join(t.TempDir(), k)
			if err := os.WriteFile(local, []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
			files[filepath.Join(vm.MountPath, k)] = local
		}
	}
	return files
}

func port(t *testing.T, where, addr string) int32 {
	_, p := hostPort(t, where, addr)
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Errorf("%s: port of %q: %v", where, addr, err)
	}
	return int32(n)
}

func containerPort(c corev1.Container, name string) int32 {
	for _, p := range c.Ports {
		if p.Name == name {
			return p.ContainerPort
		}
	}
	return 0
}

func TestKubernetesManifests(t *testing.T) {
	m := loadManifests(t)
	if got := sortedKeys(m.deployments); !slices.Equal(got, sortedCopy(services)) {
		t.Fatalf("Deployments %v, want one per service %v", got, sortedCopy(services))
	}

	served := map[string]int32{} // the gRPC port of each service
	for _, name := range services {
		d := m.deployments[name]
		where := "Deployment " + name
		spec := d.Spec.Template.Spec
		if len(spec.Containers) != 1 {
			t.Fatalf("%s: %d containers, want 1", where, len(spec.Containers))
		}
		c := spec.Containers[0]
		if d.Spec.Selector == nil {
			t.Fatalf("%s has no selector", where)
		}
		sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
		if err != nil || !sel.Matches(labels.Set(d.Spec.Template.Labels)) {
			t.Errorf("%s: selector %v does not match its pod labels %v (%v)", where, d.Spec.Selector, d.Spec.Template.Labels, err)
		}
		if got := c.Args; !slices.Equal(got, []string{"serve", "--target=" + name}) {
			t.Errorf("%s: args %q, want serve --target=%s", where, got, name)
		}
		if !strings.HasPrefix(c.Image, "toutiao-reco/reco:") {
			t.Errorf("%s: image %s, want toutiao-reco/reco (kustomization sets the tag)", where, c.Image)
		}

		// The configuration the pod runs with loads and validates.
		env := m.podEnv(t, where, c)
		cfg, _ := checkConfigEnv(t, where, env, m.mountedFiles(t, where, spec, c))
		grpc := port(t, where+" grpc_addr", cfg.Server.GRPCAddr)
		metrics := port(t, where+" metrics_addr", cfg.Server.MetricsAddr)
		served[name] = grpc
		if h, _ := hostPort(t, where, cfg.Server.GRPCAddr); h != "0.0.0.0" {
			t.Errorf("%s: server.grpc_addr %s is not reachable from other pods", where, cfg.Server.GRPCAddr)
		}
		if strconv.Itoa(int(grpc)) != grpcPorts[name] || strconv.Itoa(int(metrics)) != metricsPorts[name] {
			t.Errorf("%s listens on %d (gRPC) and %d (metrics), want %s and %s as every deployment", where, grpc, metrics, grpcPorts[name], metricsPorts[name])
		}
		if containerPort(c, "grpc") != grpc || containerPort(c, "metrics") != metrics {
			t.Errorf("%s: container ports %+v, want grpc %d and metrics %d as its configuration listens", where, c.Ports, grpc, metrics)
		}
		// The HTTP routes of routing and nearline, on the port every
		// deployment gives them; the others have none to serve.
		type namedPort struct {
			name string
			port int32
		}
		wantPorts := []namedPort{{"grpc", grpc}, {"metrics", metrics}}
		if want, ok := httpServers[name]; ok {
			http := port(t, where+" http_addr", cfg.Server.HTTPAddr)
			if h, p := hostPort(t, where, cfg.Server.HTTPAddr); h != "0.0.0.0" || p != want || containerPort(c, "http") != http {
				t.Errorf("%s: server.http_addr %s, container port http %d; want 0.0.0.0:%s, declared", where, cfg.Server.HTTPAddr, containerPort(c, "http"), want)
			}
			wantPorts = append(wantPorts, namedPort{"http", http})
		} else if containerPort(c, "http") != 0 {
			t.Errorf("%s declares an http port, but %s serves no HTTP routes", where, name)
		}
		if a := d.Spec.Template.Annotations; a["prometheus.io/scrape"] != "true" || a["prometheus.io/port"] != strconv.Itoa(int(metrics)) {
			t.Errorf("%s: prometheus annotations %v, want scrape on port %d", where, a, metrics)
		}

		// Probes: gRPC health checks of the serving port (server.grpc_addr);
		// over TLS, which the kubelet's own gRPC probes cannot speak, `reco
		// health` with the pod's environment, checking the service's name in
		// its certificate.
		rp, lp := c.ReadinessProbe, c.LivenessProbe
		if !healthProbe(rp, cfg, grpc, healthService[name], name) {
			t.Errorf("%s: readiness probe %+v, want gRPC health of %s on port %d", where, rp, healthService[name], grpc)
		}
		if !healthProbe(lp, cfg, grpc, "", name) {
			t.Errorf("%s: liveness probe %+v, want gRPC health on port %d", where, lp, grpc)
		} else if time.Duration(lp.PeriodSeconds*lp.FailureThreshold)*time.Second <= stopTime(cfg) {
			// Health is NOT_SERVING from SIGTERM on, the process as a whole too.
			t.Errorf("%s: liveness would kill a pod within its lame duck and drain (%ds × %d)", where, lp.PeriodSeconds, lp.FailureThreshold)
		}

		// Stop: preStop sleep, then SIGTERM, the lame duck and the drain, all
		// within the grace period.
		if c.Lifecycle == nil || c.Lifecycle.PreStop == nil || c.Lifecycle.PreStop.Sleep == nil {
			t.Errorf("%s: no preStop sleep: endpoints may still send to a stopping pod", where)
		} else {
			pre := time.Duration(c.Lifecycle.PreStop.Sleep.Seconds) * time.Second
			grace := spec.TerminationGracePeriodSeconds
			if grace == nil || time.Duration(*grace)*time.Second <= pre+stopTime(cfg) {
				t.Errorf("%s: terminationGracePeriodSeconds %s must exceed preStop %v + lame duck %v + drain %v + metrics shutdown 1s", where, deref(grace), pre, cfg.Server.LameDuck, cfg.Server.DrainTimeout)
			}
		}

		// Resources.
		for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
			req, okReq := c.Resources.Requests[r]
			lim, okLim := c.Resources.Limits[r]
			if !okReq || !okLim || req.Cmp(lim) > 0 {
				t.Errorf("%s: %s request %v and limit %v, want both, request ≤ limit", where, r, req.String(), lim.String())
			}
		}
		sc := spec.SecurityContext
		if sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
			t.Errorf("%s: pods must run as non-root", where)
		}

		// A Service in front, whose ports reach the container's.
		svc, ok := m.services[name]
		if !ok {
			t.Errorf("%s has no Service", where)
			continue
		}
		if !labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(d.Spec.Template.Labels)) || len(svc.Spec.Selector) == 0 {
			t.Errorf("Service %s: selector %v does not select the %s pods", name, svc.Spec.Selector, name)
		}
		for _, want := range wantPorts {
			i := slices.IndexFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool { return p.Name == want.name })
			if i < 0 {
				t.Errorf("Service %s has no %s port", name, want.name)
				continue
			}
			sp := svc.Spec.Ports[i]
			if sp.Port != want.port || containerPort(c, sp.TargetPort.String()) != want.port {
				t.Errorf("Service %s port %s: %d → %s, want %d → the container's %s port", name, want.name, sp.Port, sp.TargetPort.String(), want.port, want.name)
			}
		}

		// A disruption budget that leaves a drain possible.
		pdb, ok := m.pdbs[name]
		if !ok {
			t.Errorf("%s has no PodDisruptionBudget", where)
		} else {
			ps, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
			if err != nil || !ps.Matches(labels.Set(d.Spec.Template.Labels)) {
				t.Errorf("PodDisruptionBudget %s does not select the %s pods", name, name)
			}
			replicas := d.Spec.Replicas
			if hpa, ok := m.hpas[name]; ok {
				// The HPA owns the count; its floor is what a drain must leave.
				replicas = hpa.Spec.MinReplicas
			}
			if pdb.Spec.MinAvailable == nil || replicas == nil || pdb.Spec.MinAvailable.IntValue() >= int(*replicas) {
				t.Errorf("PodDisruptionBudget %s: minAvailable %v with %s replicas blocks every node drain", name, pdb.Spec.MinAvailable, deref(replicas))
			}
		}
	}

	t.Run("the log's users have Kafka, the appenders a spill volume", func(t *testing.T) {
		for _, name := range logUsers {
			c := m.deployments[name].Spec.Template.Spec.Containers[0]
			env := m.podEnv(t, name, c)
			if env["RECO_STORAGE_LOG_BACKEND"] != "kafka" || env["RECO_STORAGE_LOG_KAFKA_BROKERS"] == "" {
				t.Errorf("%s: log backend %q, brokers %q: want Kafka (every replica opens the log)", name, env["RECO_STORAGE_LOG_BACKEND"], env["RECO_STORAGE_LOG_KAFKA_BROKERS"])
			}
			// The root file system is read-only: a spill directory must be a
			// writable volume, or the process cannot open it.
			dir := env["RECO_STORAGE_LOG_KAFKA_SPILL_DIR"]
			if dir == "" && !slices.Contains(logAppenders, name) {
				continue
			}
			if dir == "" || !slices.ContainsFunc(c.VolumeMounts, func(v corev1.VolumeMount) bool { return v.MountPath == dir && !v.ReadOnly }) {
				t.Errorf("%s: spill dir %q: want it on a writable volume (the root file system is read-only)", name, dir)
			}
		}
	})

	t.Run("peers reach each other through the Services", func(t *testing.T) {
		for _, name := range services {
			c := m.deployments[name].Spec.Template.Spec.Containers[0]
			env := m.podEnv(t, name, c)
			for _, peer := range peers[name] {
				host, p := hostPort(t, name, env[clientEnv[peer]])
				svc, ok := m.services[host]
				if !ok || host != peer {
					t.Errorf("%s reaches %s at %s=%s, which is not the %s Service", name, peer, clientEnv[peer], env[clientEnv[peer]], peer)
					continue
				}
				// The clients balance over the pods (README "Replicas"):
				// they must see them all, not one virtual IP.
				if svc.Spec.ClusterIP != corev1.ClusterIPNone || !strings.HasPrefix(env[clientEnv[peer]], "dns:///") {
					t.Errorf("%s reaches %s at %s through Service clusterIP %q: want a headless Service and a dns:/// target", name, peer, env[clientEnv[peer]], svc.Spec.ClusterIP)
				}
				if p != strconv.Itoa(int(served[peer])) || !slices.ContainsFunc(svc.Spec.Ports, func(sp corev1.ServicePort) bool { return strconv.Itoa(int(sp.Port)) == p }) {
					t.Errorf("%s reaches %s on port %s; the Service and pod serve %d", name, peer, p, served[peer])
				}
			}
		}
	})

	t.Run("HPA scales routing", func(t *testing.T) {
		hpa, ok := m.hpas["routing"]
		if !ok || len(m.hpas) != 1 {
			t.Fatalf("HPAs %v, want one for routing", sortedKeys(m.hpas))
		}
		ref := hpa.Spec.ScaleTargetRef
		if ref.Kind != "Deployment" || ref.APIVersion != "apps/v1" || ref.Name != "routing" {
			t.Errorf("HPA targets %+v, want the routing Deployment", ref)
		}
		routing := m.deployments["routing"]
		if hpa.Spec.MinReplicas == nil || *hpa.Spec.MinReplicas < 2 || hpa.Spec.MaxReplicas <= *hpa.Spec.MinReplicas {
			t.Errorf("HPA replicas %s..%d, want at least 2 and room to grow", deref(hpa.Spec.MinReplicas), hpa.Spec.MaxReplicas)
		}
		if len(hpa.Spec.Metrics) == 0 || hpa.Spec.Metrics[0].Resource == nil || hpa.Spec.Metrics[0].Resource.Name != corev1.ResourceCPU {
			t.Errorf("HPA metrics %+v, want CPU utilisation", hpa.Spec.Metrics)
		} else if _, ok := routing.Spec.Template.Spec.Containers[0].Resources.Requests[corev1.ResourceCPU]; !ok {
			t.Error("HPA scales on CPU utilisation, but routing requests no CPU")
		}
	})

	t.Run("strategies ConfigMap", func(t *testing.T) {
		cm, ok := m.configMaps["reco-strategies"]
		if !ok {
			t.Fatal("no reco-strategies ConfigMap")
		}
		got := cm.Data["strategies.yaml"]
		checkStrategies(t, "reco-strategies", []byte(got))
		if want := string(readRepoFile(t, "deploy/strategies.yaml")); got != want {
			t.Errorf("reco-strategies strategies.yaml differs from deploy/strategies.yaml:\n%s\nwant\n%s", got, want)
		}
	})

	t.Run("bootstrap Job", func(t *testing.T) {
		job, ok := m.jobs["reco-bootstrap"]
		if !ok {
			t.Fatal("no reco-bootstrap Job")
		}
		spec := job.Spec.Template.Spec
		c := spec.Containers[0]
		if !slices.Equal(c.Args, []string{"admin", "bootstrap"}) {
			t.Errorf("bootstrap Job args %q, want admin bootstrap", c.Args)
		}
		cfg, _ := checkConfigEnv(t, "bootstrap Job", m.podEnv(t, "bootstrap Job", c), m.mountedFiles(t, "bootstrap Job", spec, c))
		if cfg.Storage.Tables != "hbase" {
			t.Errorf("bootstrap Job: storage.tables %q, want hbase", cfg.Storage.Tables)
		}
	})

	t.Run("kustomization lists every manifest", func(t *testing.T) {
		var k struct {
			APIVersion string   `yaml:"apiVersion"`
			Kind       string   `yaml:"kind"`
			Namespace  string   `yaml:"namespace"`
			Resources  []string `yaml:"resources"`
			Images     []struct {
				Name    string `yaml:"name"`
				NewName string `yaml:"newName"`
				NewTag  string `yaml:"newTag"`
			} `yaml:"images"`
		}
		decodeStrict(t, "deploy/k8s/kustomization.yaml", &k)
		if k.Kind != "Kustomization" || !slices.Equal(sortedCopy(k.Resources), sortedCopy(m.files)) {
			t.Errorf("kustomization resources %v, want %v", k.Resources, m.files)
		}
		if len(k.Images) != 1 || k.Images[0].Name != "toutiao-reco/reco" {
			t.Errorf("kustomization images %+v, want toutiao-reco/reco", k.Images)
		}
	})
}

// deref prints an optional field.
func deref[T any](p *T) string {
	if p == nil {
		return "(unset)"
	}
	return fmt.Sprint(*p)
}

func sortedKeys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
