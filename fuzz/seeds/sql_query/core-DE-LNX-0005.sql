SELECT pid, parent, name, path, cmdline, uid, euid
FROM processes
WHERE name IN ('sshd', 'sshd-session', 'systemd', 'init', 'cron', 'crond', 'anacron', 'atd',
               'rsyslogd', 'syslog-ng', 'dbus-daemon', 'dbus-broker', 'systemd-journal',
               'systemd-journald', 'systemd-logind', 'systemd-udevd', 'systemd-network',
               'systemd-resolve', 'systemd-timesyn', 'udevd', 'agetty', 'getty', 'login',
               'auditd', 'polkitd', 'containerd', 'containerd-shim', 'dockerd', 'snapd',
               'NetworkManager', 'ModemManager', 'chronyd', 'ntpd', 'cupsd', 'avahi-daemon',
               'irqbalance', 'accounts-daemon', 'udisksd', 'upowerd', 'acpid', 'kubelet',
               'rpcbind', 'sssd', 'nscd', 'sudo', 'su')
  AND path IS NOT NULL
  AND NOT (name = 'init' AND path = '/init')
  AND NOT path REGEXP '^/(usr/(local/)?s?bin|s?bin|usr/lib[^/]*|lib[^/]*|usr/libexec|snap|nix/store|var/lib/rancher/(k3s|rke2)/data)/'
