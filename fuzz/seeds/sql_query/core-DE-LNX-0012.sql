SELECT pid, parent, name, path, cmdline, uid, euid, cpu_percent,
       regex_match(cmdline, '(?i)(stratum[0-9]?\+(tcp|ssl|tls)://[^\s,]+)', 1) AS pool
FROM processes
WHERE name REGEXP '(?i)^(xmrig.*|xmr-stak.*|xmrminer|minerd|cpuminer.*|ccminer|ethminer|nbminer|t-rex|lolminer|phoenixminer|nanominer|teamredminer|gminer|srbminer.*|bzminer|kdevtmpfsi|kinsing|kworkerds)$'
   OR cmdline REGEXP 'stratum[0-9]?\+(tcp|ssl|tls)://|--donate-level|-a[\s=]+(cryptonight|cn/|rx/|randomx|argon2|kawpow|ethash|etchash|autolykos|ghostrider|cuckatoo)|--algo[\s=]+(cryptonight|cn/|rx/|randomx|argon2|kawpow|ethash|etchash|autolykos|ghostrider|cuckatoo)|--randomx-|--coin[\s=]+(monero|xmr)(\s|$)|xmr\.pool\.|nicehash\.com|minexmr\.|supportxmr\.|moneroocean\.|nanopool\.org|hashvault\.pro|c3pool\.|herominers\.|2miners\.com|-u[\s=]+[48][1-9A-HJ-NP-Za-km-z]{94}([^1-9A-HJ-NP-Za-km-z]|$)|--user[\s=]+[48][1-9A-HJ-NP-Za-km-z]{94}([^1-9A-HJ-NP-Za-km-z]|$)'
