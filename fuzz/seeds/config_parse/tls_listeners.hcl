storage "raft" {
  path    = "/opt/vault/data"
  node_id = "node1"
}
listener "tcp" {
  address       = "0.0.0.0:8200"
  tls_cert_file = "/etc/coffer/tls.crt"
  tls_key_file  = "/etc/coffer/tls.key"
  tls_client_ca_file = "/etc/coffer/ca.pem"
  tls_require_and_verify_client_cert = "true"
}
listener "tcp" {
  address = "127.0.0.1:8300"
  tls_disable = 1
}
seal "awskms" { region = "us-east-1" }
telemetry { prometheus_retention_time = "30s" }
