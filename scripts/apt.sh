# apt.sh — sourced by the scripts that install what they need from Debian's
# packages on a fresh machine (CI starts from nothing).

# apt_install PACKAGE: install PACKAGE with apt-get, through sudo unless root.
apt_install() {
  local sudo=""
  [[ $(id -u) -eq 0 ]] || sudo="sudo"
  command -v apt-get >/dev/null || { printf 'apt.sh: %s is missing and there is no apt-get to install it\n' "$1" >&2; return 1; }
  printf 'apt.sh: installing %s from Debian'"'"'s packages\n' "$1" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$1" >/dev/null
}
