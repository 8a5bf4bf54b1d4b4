storage "file" {
  path = "/var/lib/coffer"
}

listener "tcp" {
  address     = "127.0.0.1:8200"
  tls_disable = true
}

api_addr          = "http://127.0.0.1:8200"
cluster_addr      = "https://127.0.0.1:8201"
default_lease_ttl = "768h"
max_lease_ttl     = "8760h"
disable_mlock     = true
ui                = true
log_level         = "info"
