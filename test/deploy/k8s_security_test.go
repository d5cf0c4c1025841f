package deploy

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/toutiao-reco/toutiao-reco/pkg/config"
)

// healthProbe reports whether p checks gRPC health of service ("" the server
// as a whole) on port: natively without TLS, else by `reco health` run with
// the pod's environment (so on server.grpc_addr), verifying name in the
// server's certificate.
func healthProbe(p *corev1.Probe, cfg config.Config, port int32, service, name string) bool {
	if p == nil {
		return false
	}
	if !cfg.Server.TLS.Enabled() {
		return p.GRPC != nil && p.GRPC.Port == port && (service == "" && p.GRPC.Service == nil || p.GRPC.Service != nil && *p.GRPC.Service == service)
	}
	if p.Exec == nil || len(p.Exec.Command) < 2 || p.Exec.Command[0] != "/usr/local/bin/reco" || p.Exec.Command[1] != "health" {
		return false
	}
	flags := map[string]string{}
	args := p.Exec.Command[2:]
	for i := 0; i+1 < len(args); i += 2 {
		flags[args[i]] = args[i+1]
	}
	_, addr := flags["--addr"]
	return !addr && flags["--service"] == service && flags["--server-name"] == name
}

// redisUsers are the services whose module opens Redis (pkg/app's roles).
var redisUsers = []string{"recocenter", "recall", "cache", "nearline"}

// TestKubernetesSecurity checks DESIGN.md §10 in deploy/k8s: who may connect
// to what (NetworkPolicy), pods without an API token, TLS files and the Redis
// password from Secrets and never in a ConfigMap, the hardening of every
// container, routing's count left to its HPA, replicas spread over nodes.
func TestKubernetesSecurity(t *testing.T) {
	m := loadManifests(t)

	t.Run("service account without a token", func(t *testing.T) {
		sa, ok := m.accounts["reco"]
		if !ok || sa.AutomountServiceAccountToken == nil || *sa.AutomountServiceAccountToken {
			t.Fatalf("ServiceAccount reco = %+v, want one with automountServiceAccountToken: false", sa)
		}
		pods := map[string]corev1.PodSpec{"Job reco-bootstrap": m.jobs["reco-bootstrap"].Spec.Template.Spec}
		for name, d := range m.deployments {
			pods["Deployment "+name] = d.Spec.Template.Spec
		}
		for where, spec := range pods {
			if spec.ServiceAccountName != "reco" || spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
				t.Errorf("%s: serviceAccountName %q, automountServiceAccountToken %s; want reco and false", where, spec.ServiceAccountName, deref(spec.AutomountServiceAccountToken))
			}
			checkHardened(t, where, spec)
		}
	})

	t.Run("routing's replicas are the HPA's", func(t *testing.T) {
		if r := m.deployments["routing"].Spec.Replicas; r != nil {
			t.Errorf("Deployment routing pins replicas: %d; its HPA owns the count", *r)
		}
		for _, name := range services {
			if _, hpa := m.hpas[name]; !hpa && (m.deployments[name].Spec.Replicas == nil || *m.deployments[name].Spec.Replicas < 2) {
				t.Errorf("Deployment %s has neither an HPA nor 2 replicas or more (%s): one pod is an outage per restart", name, deref(m.deployments[name].Spec.Replicas))
			}
		}
	})

	t.Run("replicas spread over nodes", func(t *testing.T) {
		for _, name := range services {
			tmpl := m.deployments[name].Spec.Template
			i := slices.IndexFunc(tmpl.Spec.TopologySpreadConstraints, func(c corev1.TopologySpreadConstraint) bool {
				return c.TopologyKey == "kubernetes.io/hostname"
			})
			if i < 0 {
				t.Errorf("Deployment %s: no topologySpreadConstraint over kubernetes.io/hostname", name)
				continue
			}
			sel, err := metav1.LabelSelectorAsSelector(tmpl.Spec.TopologySpreadConstraints[i].LabelSelector)
			if err != nil || sel.Empty() || !sel.Matches(labels.Set(tmpl.Labels)) {
				t.Errorf("Deployment %s: the spread constraint's selector does not select its pods (%v)", name, err)
			}
		}
	})

	t.Run("TLS, authorization and secrets from Secrets", func(t *testing.T) {
		for _, name := range services {
			d := m.deployments[name]
			where := "Deployment " + name
			spec, c := d.Spec.Template.Spec, d.Spec.Template.Spec.Containers[0]
			cfg, _ := checkConfigEnv(t, where, m.podEnv(t, where, c), m.mountedFiles(t, where, spec, c))
			st, ct := cfg.Server.TLS, cfg.Clients.TLS
			if !st.Enabled() || st.ClientCAFile == "" || !cfg.Server.Authz.Enabled || !ct.Enabled || ct.CertFile == "" {
				t.Errorf("%s: server.tls %+v, server.authz %+v, clients.tls %+v; want TLS, mutual TLS and authorization on", where, st, cfg.Server.Authz, ct)
			}
			for _, f := range []string{st.CertFile, st.KeyFile, st.ClientCAFile, ct.CAFile, ct.CertFile, ct.KeyFile} {
				if got := secretOf(spec, c, f); got != "reco-tls-"+name {
					t.Errorf("%s: %s comes from %q, want the Secret reco-tls-%s", where, f, got, name)
				}
			}
			if slices.Contains(redisUsers, name) {
				if f := cfg.Storage.Redis.PasswordFile; f == "" || secretOf(spec, c, f) != "reco-redis" {
					t.Errorf("%s: storage.redis.password_file %q is not in the Secret reco-redis", where, f)
				}
			}
			if cfg.Storage.Redis.Password != "" {
				t.Errorf("%s: storage.redis.password is set in its environment; it belongs in the reco-redis Secret", where)
			}
		}
		for name, cm := range m.configMaps {
			for k, v := range cm.Data {
				if secretLike(k, v) {
					t.Errorf("ConfigMap %s: %s looks like a secret; secrets come from Secrets", name, k)
				}
			}
		}
	})

	t.Run("network policy", func(t *testing.T) {
		for _, name := range services {
			if !isolated(m, m.deployments[name].Spec.Template.Labels) {
				t.Errorf("Deployment %s: no NetworkPolicy isolates its pods: anything may connect", name)
			}
		}
		outside := source{}
		prometheus := source{namespace: "monitoring", labels: map[string]string{"app.kubernetes.io/name": "prometheus"}}
		operator := source{namespace: "reco", labels: map[string]string{"app.kubernetes.io/name": "reco", "app.kubernetes.io/component": "operator"}}
		operatorElsewhere := source{namespace: "default", labels: operator.labels}
		pod := func(component string) source {
			return source{namespace: "reco", labels: m.deployments[component].Spec.Template.Labels}
		}
		for _, tt := range []struct {
			from  source
			fromN string
			to    string
			port  string
			want  bool
		}{
			{outside, "outside", "routing", "grpc", true},
			{outside, "outside", "routing", "http", true},
			{outside, "outside", "routing", "metrics", false},
			{outside, "outside", "recocenter", "grpc", false},
			{outside, "outside", "cache", "grpc", false},
			{pod("routing"), "routing", "recocenter", "grpc", true},
			{pod("routing"), "routing", "recall", "grpc", true},
			{pod("routing"), "routing", "cache", "grpc", false},
			{pod("routing"), "routing", "sort", "grpc", false},
			{pod("recocenter"), "recocenter", "cache", "grpc", true},
			{pod("recocenter"), "recocenter", "recall", "grpc", true},
			{pod("recocenter"), "recocenter", "sort", "grpc", true},
			{pod("cache"), "cache", "recocenter", "grpc", false},
			{pod("sort"), "sort", "cache", "grpc", false},
			{source{namespace: "reco", labels: map[string]string{"app": "other"}}, "another pod of the namespace", "cache", "grpc", false},
			{prometheus, "Prometheus", "cache", "metrics", true},
			{prometheus, "Prometheus", "routing", "metrics", true},
			{prometheus, "Prometheus", "cache", "grpc", false},
			// nearline: no service calls it; operators' admin calls and
			// readouts come in, and Prometheus scrapes it.
			{outside, "outside", "nearline", "grpc", false},
			{outside, "outside", "nearline", "http", false},
			{operator, "an operator's pod", "nearline", "grpc", true},
			{operator, "an operator's pod", "nearline", "http", true},
			{operator, "an operator's pod", "nearline", "metrics", false},
			{operatorElsewhere, "an operator-labelled pod of another namespace", "nearline", "grpc", false},
			{operator, "an operator's pod", "cache", "grpc", false},
			{operator, "an operator's pod", "recocenter", "grpc", false},
			{pod("routing"), "routing", "nearline", "grpc", false},
			{pod("recocenter"), "recocenter", "nearline", "grpc", false},
			{prometheus, "Prometheus", "nearline", "metrics", true},
			{prometheus, "Prometheus", "nearline", "grpc", false},
		} {
			if got := allowed(m, tt.from, tt.to, tt.port); got != tt.want {
				t.Errorf("%s → %s port %s: allowed = %v, want %v", tt.fromN, tt.to, tt.port, got, tt.want)
			}
		}
		// Egress stays open (networkpolicy.yaml says why): every pod dials
		// the stores (Redis, HBase, Kafka) at addresses only reco-env names,
		// and an egress rule here could only guess them.
		for name, np := range m.netpols {
			if slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeEgress) || len(np.Spec.Egress) > 0 {
				t.Errorf("NetworkPolicy %s restricts egress: routing, recocenter and nearline must reach Kafka, and the stores' addresses are reco-env's; allow them all or leave egress open", name)
			}
		}
	})

	t.Run("ServiceMonitors scrape every metrics port over HTTPS", func(t *testing.T) {
		b := readRepoFile(t, "deploy/k8s/monitoring/servicemonitors.yaml")
		seen := map[string]bool{}
		for _, doc := range docSeparator.Split(string(b), -1) {
			if strings.TrimSpace(stripComments(doc)) == "" {
				continue
			}
			var sm struct {
				APIVersion string            `json:"apiVersion"`
				Kind       string            `json:"kind"`
				Metadata   metav1.ObjectMeta `json:"metadata"`
				Spec       struct {
					Selector  metav1.LabelSelector `json:"selector"`
					Endpoints []struct {
						Port      string `json:"port"`
						Path      string `json:"path"`
						Scheme    string `json:"scheme"`
						Interval  string `json:"interval"`
						TLSConfig struct {
							ServerName string `json:"serverName"`
							CA         struct {
								Secret corev1.SecretKeySelector `json:"secret"`
							} `json:"ca"`
						} `json:"tlsConfig"`
					} `json:"endpoints"`
				} `json:"spec"`
			}
			if err := sigsyaml.UnmarshalStrict([]byte(doc), &sm); err != nil {
				t.Fatalf("servicemonitors.yaml: %v", err)
			}
			name := sm.Metadata.Name
			svc, ok := m.services[name]
			if sm.APIVersion != "monitoring.coreos.com/v1" || sm.Kind != "ServiceMonitor" || !ok {
				t.Errorf("servicemonitors.yaml: %s %s %s, want a monitoring.coreos.com/v1 ServiceMonitor per Service", sm.APIVersion, sm.Kind, name)
				continue
			}
			seen[name] = true
			sel, err := metav1.LabelSelectorAsSelector(&sm.Spec.Selector)
			if err != nil || !sel.Matches(labels.Set(svc.Labels)) || sel.Matches(labels.Set(m.services[other(name)].Labels)) {
				t.Errorf("ServiceMonitor %s does not select the Service %s alone", name, name)
			}
			if len(sm.Spec.Endpoints) != 1 {
				t.Fatalf("ServiceMonitor %s: %d endpoints, want 1", name, len(sm.Spec.Endpoints))
			}
			ep := sm.Spec.Endpoints[0]
			if ep.Port != "metrics" || ep.Path != "/metrics" || ep.Scheme != "https" || ep.TLSConfig.ServerName != name || ep.TLSConfig.CA.Secret.Name != "reco-tls-"+name || ep.TLSConfig.CA.Secret.Key != "ca.crt" {
				t.Errorf("ServiceMonitor %s endpoint %+v, want port metrics, /metrics over https verified as %s with reco-tls-%s's ca.crt", name, ep, name, name)
			}
		}
		if len(seen) != len(services) {
			t.Errorf("ServiceMonitors for %v, want one per service %v", sortedKeys(seen), services)
		}
	})
}

// other is some service that is not name.
func other(name string) string {
	if name == "cache" {
		return "sort"
	}
	return "cache"
}

// checkHardened: non-root, no privilege escalation, no capabilities, read-only
// root, the runtime's seccomp profile.
func checkHardened(t *testing.T, where string, spec corev1.PodSpec) {
	t.Helper()
	sc := spec.SecurityContext
	if sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("%s: pod securityContext %+v, want runAsNonRoot and seccomp RuntimeDefault", where, sc)
	}
	for _, c := range spec.Containers {
		cs := c.SecurityContext
		if cs == nil || cs.ReadOnlyRootFilesystem == nil || !*cs.ReadOnlyRootFilesystem || cs.AllowPrivilegeEscalation == nil || *cs.AllowPrivilegeEscalation ||
			cs.Capabilities == nil || !slices.Equal(cs.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(cs.Capabilities.Add) > 0 {
			t.Errorf("%s container %s: securityContext %+v, want a read-only root, no privilege escalation, every capability dropped", where, c.Name, cs)
		}
	}
}

// secretOf is the Secret the file at path comes from in the container, "" when
// none does; its files must be readable by the pod's user.
func secretOf(spec corev1.PodSpec, c corev1.Container, path string) string {
	for _, vm := range c.VolumeMounts {
		rel, err := filepath.Rel(vm.MountPath, path)
		if err != nil || strings.HasPrefix(rel, "..") {
			continue
		}
		for _, v := range spec.Volumes {
			if v.Name != vm.Name || v.Secret == nil {
				continue
			}
			mode := int32(0o644)
			if v.Secret.DefaultMode != nil {
				mode = *v.Secret.DefaultMode
			}
			groupReadable := spec.SecurityContext != nil && spec.SecurityContext.FSGroup != nil && mode&0o040 != 0
			if mode&0o004 == 0 && !groupReadable {
				return v.Secret.SecretName + " (unreadable by the pod's user)"
			}
			return v.Secret.SecretName
		}
	}
	return ""
}

// secretLike reports whether a ConfigMap entry holds what only a Secret may:
// a password, a token, key material (paths to such files are fine).
func secretLike(key, value string) bool {
	k := strings.ToUpper(key)
	if strings.HasSuffix(k, "_FILE") || strings.HasSuffix(k, "_DIR") {
		return strings.Contains(value, "-----BEGIN")
	}
	return strings.Contains(k, "PASSWORD") || strings.Contains(k, "TOKEN") || strings.Contains(k, "SECRET") || strings.Contains(value, "-----BEGIN")
}

// source is where a connection comes from: a pod (namespace and labels) or,
// with no namespace, outside the cluster.
type source struct {
	namespace string
	labels    map[string]string
}

// isolated reports whether a NetworkPolicy of Ingress type selects the pods
// with podLabels (only then do the policies' rules restrict them).
func isolated(m manifests, podLabels map[string]string) bool {
	for _, np := range m.netpols {
		sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
		if err == nil && sel.Matches(labels.Set(podLabels)) && slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeIngress) {
			return true
		}
	}
	return false
}

// allowed evaluates deploy/k8s's NetworkPolicies (in namespace "reco") as the
// cluster would: a connection from src to the named port of service's pods is
// let in when a policy selecting them has an ingress rule whose ports include
// it and whose peers include src.
func allowed(m manifests, src source, service, portName string) bool {
	tmpl := m.deployments[service].Spec.Template
	podLabels := tmpl.Labels
	if !isolated(m, podLabels) {
		return true
	}
	var port corev1.ContainerPort
	for _, p := range tmpl.Spec.Containers[0].Ports {
		if p.Name == portName {
			port = p
		}
	}
	if port.Name == "" {
		port.Name = portName // a port the pod does not (yet) declare: by name only
	}
	for _, np := range m.netpols {
		sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
		if err != nil || !sel.Matches(labels.Set(podLabels)) {
			continue
		}
		for _, rule := range np.Spec.Ingress {
			if !portMatches(rule.Ports, port) {
				continue
			}
			if len(rule.From) == 0 {
				return true
			}
			for _, peer := range rule.From {
				if peerMatches(peer, src) {
					return true
				}
			}
		}
	}
	return false
}

func portMatches(ports []networkingv1.NetworkPolicyPort, p corev1.ContainerPort) bool {
	if len(ports) == 0 {
		return true
	}
	for _, np := range ports {
		switch {
		case np.Port == nil:
			return true
		case np.Port.StrVal != "" && np.Port.StrVal == p.Name:
			return true
		case np.Port.StrVal == "" && np.Port.IntVal == p.ContainerPort && p.ContainerPort != 0:
			return true
		}
	}
	return false
}

func peerMatches(peer networkingv1.NetworkPolicyPeer, src source) bool {
	if src.namespace == "" || peer.IPBlock != nil {
		return false // outside the cluster: only a rule without peers lets it in
	}
	if peer.NamespaceSelector == nil && src.namespace != "reco" {
		return false
	}
	if peer.NamespaceSelector != nil {
		ns, err := metav1.LabelSelectorAsSelector(peer.NamespaceSelector)
		if err != nil || !ns.Matches(labels.Set{"kubernetes.io/metadata.name": src.namespace}) {
			return false
		}
	}
	if peer.PodSelector == nil {
		return true
	}
	ps, err := metav1.LabelSelectorAsSelector(peer.PodSelector)
	return err == nil && ps.Matches(labels.Set(src.labels))
}
