# comments are fine
path "secret/data/app/*" {
  capabilities = ["create", "read", "update", "delete", "list"]
}
path "/sys/mounts" {
  capabilities = ["read", "sudo"]
}
