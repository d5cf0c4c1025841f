// Package deploy holds the tests of the deployment files: Dockerfile,
// docker-compose.yml, deploy/supervisor, deploy/k8s, deploy/prometheus and
// deploy/grafana. No Docker engine or Kubernetes cluster runs where the tests
// run, so the files are validated the way their tools read them (the compose-spec
// loader, strict decoding into the Kubernetes API types, the PromQL parser) and
// cross-checked against the code: every RECO_* variable is a key of
// config.EnvTable and its value passes config.Validate, every peer address names
// a service and its port, every dashboard query and alert rule selects series the services
// really export after real traffic. The supervisor deployment is run for real:
// supervisord starts the six services against real Redis and HBase, and a
// Kafka of its own from deploy/supervisor/storage.conf.
package deploy
