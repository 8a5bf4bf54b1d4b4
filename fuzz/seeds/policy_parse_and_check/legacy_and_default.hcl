path "auth/token/lookup-self" { capabilities = ["read"] }
path "auth/token/renew-self" { capabilities = ["update"] }
path "sys/capabilities-self" { capabilities = ["update"] }
path "cubbyhole/*" { capabilities = ["create", "read", "update", "delete", "list"] }
path "secret/x" { policy = "deny" }
path "secret/y" { policy = "sudo" }
path "sys/wrapping/wrap" { capabilities = ["update"] }
