SELECT pid, parent, name, path, cmdline, uid, euid
FROM processes
WHERE path LIKE '%/.%'
  AND path REGEXP '/\.(\.[^/]|[^./])'
  AND NOT path REGEXP '^(/home/[^/]+|/root)/\.(vscode-server|cursor-server|rustup/toolchains|cargo/bin|nvm/versions|pyenv/versions|sdkman/candidates|asdf/installs|volta/tools|bun/bin|deno/bin|dotnet|local/share/(JetBrains|uv/python|mise/installs)|cache/JetBrains/RemoteDev)/'
