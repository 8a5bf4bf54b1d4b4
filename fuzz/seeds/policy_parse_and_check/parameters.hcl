path "secret/data/+/config" {
  capabilities = ["create", "update", "read"]
  allowed_parameters = {
    "data" = []
    "options" = []
    "ttl" = ["1h", "2h"]
  }
  denied_parameters = {
    "admin" = [true]
  }
  required_parameters = ["data"]
  min_wrapping_ttl = "1m"
  max_wrapping_ttl = "90m"
}
path "secret/metadata/*" {
  capabilities = ["list", "read"]
}
path "secret/+/team-+/*" {
  policy = "write"
}
path "auth/token/create*" {
  capabilities = ["update", "sudo"]
}
