"""Client configuration snippets for a Graft server: what `graft configure CLIENT` prints and
what the web app's setup and token pages show. Pure functions, shared by both."""

from __future__ import annotations

from enum import StrEnum
from urllib.parse import urlsplit


class Client(StrEnum):
    pip = "pip"
    uv = "uv"
    poetry = "poetry"
    twine = "twine"
    apt = "apt"
    apk = "apk"
    maven = "maven"
    gradle = "gradle"
    docker = "docker"
    containerd = "containerd"
    kubernetes = "kubernetes"
    npm = "npm"
    pnpm = "pnpm"
    yarn = "yarn"


def _apk(base: str, token: str, release: str) -> str:
    host_path = base.split("://", 1)[1]
    scheme = base.split("://", 1)[0]
    return f"""\
# 1. Graft's signing key, under the file name apk expects
KEY=$(wget -qO- {base}/keys/apk-key-name) && wget -qO /etc/apk/keys/$KEY {base}/keys/$KEY

# 2. the repository (the token is the password; any user name works)
echo "{scheme}://root:{token}@{host_path}/alpine/{release}" >> /etc/apk/repositories

# 3. install; rootio-X falls back to upstream X until a patched build exists, and a plain
#    `apk upgrade` moves to the patched build the day it is published
apk update && apk add rootio-curl

# Dockerfile, with the token as a BuildKit secret (nothing left in the image):
#   docker build --secret id=graft_token,env=GRAFT_TOKEN .
# syntax=docker/dockerfile:1
RUN --mount=type=secret,id=graft_token \\
    KEY=$(wget -qO- {base}/keys/apk-key-name) && wget -qO /etc/apk/keys/$KEY {base}/keys/$KEY && \\
    apk add --repository \\
        "{scheme}://root:$(cat /run/secrets/graft_token)@{host_path}/alpine/{release}" \\
        rootio-curl
"""


def _apt(base: str, token: str, distro: str, codename: str) -> str:
    repo = f"{base}/{distro}/{codename}"
    machine = f"machine {base}/{distro} login rootio password"
    return f"""\
# 1. Graft's archive key (public; no token needed)
curl -fsSL {base}/keys/graft-archive-keyring.gpg -o /etc/apt/keyrings/graft.gpg

# 2. the repository, next to your distribution's own sources
echo "deb [signed-by=/etc/apt/keyrings/graft.gpg] {repo} {codename} main" \\
    > /etc/apt/sources.list.d/graft.list

# 3. credentials: /etc/apt/auth.conf.d/graft.conf (chmod 600). Keep the scheme in the machine
#    line: over plain http apt sends no credentials without it.
{machine} {token}

# 4. install patched packages; rootio-X falls back to upstream X until a patched build exists
apt-get update && apt-get install -y rootio-curl
#    A patched build replaces X (Conflicts/Replaces), so plain `apt-get upgrade` holds it back:
#    use `apt-get install rootio-curl` or `apt-get full-upgrade` to move to it.

# Dockerfile, with the token as a BuildKit secret (nothing left in the image):
#   docker build --secret id=graft_token,env=GRAFT_TOKEN .
# syntax=docker/dockerfile:1
RUN --mount=type=secret,id=graft_token \\
    curl -fsSL {base}/keys/graft-archive-keyring.gpg -o /etc/apt/keyrings/graft.gpg && \\
    echo "deb [signed-by=/etc/apt/keyrings/graft.gpg] {repo} {codename} main" \\
        > /etc/apt/sources.list.d/graft.list && \\
    printf '{machine} %s\\n' "$(cat /run/secrets/graft_token)" \\
        > /etc/apt/auth.conf.d/graft.conf && \\
    apt-get update && apt-get install -y rootio-curl && \\
    rm -f /etc/apt/auth.conf.d/graft.conf && rm -rf /var/lib/apt/lists/*
"""


def _maven_settings(base: str) -> str:
    return f"""\
<!-- ~/.m2/settings.xml: every repository a build names (Maven Central included) is read
     through Graft. The token comes from the environment: export GRAFT_TOKEN=graft_...
     Maven sends it after Graft's 401 challenge; the two "preemptive" settings send it with
     the first request instead, which halves the requests (Maven 3.8: <usePreemptive>;
     Maven 3.9: the aether property; Maven 4: aether.transport.http.preemptiveAuth).
     Without the mirror, or for SNAPSHOT dependencies (the mirrored Maven Central allows no
     snapshots), add Graft as a repository: activate the graft-repository profile too, in
     <activeProfiles> or with mvn -Pgraft-repository. -->
<settings xmlns="http://maven.apache.org/SETTINGS/1.2.0">
  <servers>
    <server>
      <id>graft</id>
      <username>graft</username>
      <password>${{env.GRAFT_TOKEN}}</password>
      <configuration>
        <httpConfiguration><all><usePreemptive>true</usePreemptive></all></httpConfiguration>
      </configuration>
    </server>
  </servers>
  <mirrors>
    <mirror>
      <id>graft</id>
      <name>Graft</name>
      <mirrorOf>external:*</mirrorOf>
      <url>{base}/maven/</url>
    </mirror>
  </mirrors>
  <profiles>
    <profile>
      <id>graft-preemptive</id>
      <properties>
        <aether.connector.http.preemptiveAuth.graft>true</aether.connector.http.preemptiveAuth.graft>
      </properties>
    </profile>
    <profile>
      <id>graft-repository</id>
      <repositories>
        <repository><id>graft</id><url>{base}/maven/</url></repository>
      </repositories>
      <pluginRepositories>
        <pluginRepository><id>graft</id><url>{base}/maven/</url></pluginRepository>
      </pluginRepositories>
    </profile>
  </profiles>
  <activeProfiles><activeProfile>graft-preemptive</activeProfile></activeProfiles>
</settings>
"""


def _maven(base: str, token: str) -> str:
    url = f"{base}/maven/"
    return (
        _maven_settings(base)
        + f"""
<!-- Deploying patched builds (<upstream version>-graft.<N>) or private artifacts with
     `mvn deploy`: the <server> above supplies the token (publish scope). In pom.xml:
  <distributionManagement>
    <repository><id>graft</id><url>{url}</url></repository>
  </distributionManagement>
  <properties>
    <graft.fixes>CVE-2021-44228, CVE-2021-45046</graft.fixes>
  </properties>
  or without touching the POM (maven-deploy-plugin 3; 2.x wants graft::default::URL):
    mvn deploy -DaltDeploymentRepository=graft::{url}
    mvn deploy:deploy-file -DrepositoryId=graft -Durl={url} -Dfile=lib.jar -DpomFile=pom.xml
  Advisories can also travel as a request header, in the <server> above:
    <configuration><httpHeaders><property>
      <name>X-Graft-Fixes</name><value>CVE-2021-44228</value>
    </property></httpHeaders></configuration>
  Check the token: curl -u graft:{token} {base}/api/whoami
-->

"""
        + _gradle(base)
    )


def _gradle(base: str) -> str:
    insecure = ""
    if base.startswith("http://"):
        insecure = "\n            isAllowInsecureProtocol = true  // plain http"
    return f"""\
// Gradle (settings.gradle.kts, or build.gradle.kts): GRAFT_TOKEN from the environment.
// The basic() line sends the token with the first request instead of after a challenge.
dependencyResolutionManagement {{
    repositories {{
        maven {{
            name = "graft"
            url = uri("{base}/maven/"){insecure}
            credentials {{
                username = "graft"
                password = System.getenv("GRAFT_TOKEN")
            }}
            authentication {{ create<BasicAuthentication>("basic") }}
        }}
    }}
}}
"""


def _registry(client: Client, base: str, token: str, image: str) -> str:
    """Container clients: docker, containerd (CRI config.toml), Kubernetes pull secrets."""
    host = base.split("://", 1)[1].split("/", 1)[0]
    insecure = base.startswith("http://")
    if client is Client.docker:
        note = ""
        if insecure:
            note = (
                f'\n# plain http: add "{host}" to "insecure-registries" in '
                "/etc/docker/daemon.json\n"
            )
        return f"""\
# log in once (any user name; the token is the password)
echo "{token}" | docker login {host} --username rootio --password-stdin

# pull through Graft (upstream images, and your organization's patched tags)
docker pull {host}/{image}

# push a patched image into your organization's namespace (needs the publish scope);
# the patched-tag convention is <tag>-<label>, e.g. 3.12-slim-graft
docker tag {image} {host}/{image}-graft
docker push {host}/{image}-graft
{note}"""
    if client is Client.containerd:
        scheme = "http" if insecure else "https"
        return f"""\
# /etc/containerd/config.toml (containerd 1.x CRI plugin); restart containerd afterwards
[plugins."io.containerd.grpc.v1.cri".registry.configs."{host}".auth]
  username = "rootio"
  password = "{token}"

# and /etc/containerd/certs.d/{host}/hosts.toml (config_path = "/etc/containerd/certs.d"):
#   server = "{scheme}://{host}"
#   [host."{scheme}://{host}"]
#     capabilities = ["pull", "resolve"]

# check: crictl pull {host}/{image}
"""
    return f"""\
# an image pull secret (a dockerconfigjson) in the namespace your pods run in
kubectl create secret docker-registry graft \\
    --docker-server={host} --docker-username=rootio --docker-password="{token}" \\
    --namespace default

# use it in a pod spec (or add it to the namespace's default service account):
#   spec:
#     imagePullSecrets:
#       - name: graft
#     containers:
#       - name: app
#         image: {host}/{image}
# kubectl patch serviceaccount default -p '{{"imagePullSecrets": [{{"name": "graft"}}]}}'
"""


def _npm(client: Client, base: str, token: str) -> str:
    """.npmrc for npm and pnpm (and Yarn classic, which reads it); .yarnrc.yml for Yarn 2+."""
    registry = f"{base}/npm/"
    nerf = "//" + registry.split("://", 1)[1]  # npm keys credentials by //host/path/
    secret = "${GRAFT_TOKEN}" if token == "$GRAFT_TOKEN" else token
    npmrc = f"""\
# .npmrc (in the project, or ~/.npmrc): every package through Graft
registry={registry}
{nerf}:_authToken={secret}
# without it Yarn classic sends no token for unscoped packages (npm 11 warns that it does
# not know this key; the warning is harmless)
{nerf}:always-auth=true
"""
    publish = f"""\
# publish a private package, or a patched build (version <upstream>-graft.<N>, a prerelease,
# so it needs a dist-tag other than latest):
#   npm publish --tag patched
# or, recording the advisories it fixes:
#   graft publish npm pkg-1.2.3-graft.1.tgz --fixes CVE-2024-1234 --url {base}
# install a patched build with an exact pin, or for a transitive dependency in package.json:
#   "overrides": {{"pkg": "1.2.3-graft.1"}}            (npm, package.json)
#   overrides:                                      (pnpm 10+, pnpm-workspace.yaml)
#     pkg: 1.2.3-graft.1
#   "resolutions": {{"pkg": "1.2.3-graft.1"}}          (Yarn, package.json)
# check the token: npm whoami --registry {registry}
"""
    if client is not Client.yarn:
        return npmrc + "\n" + publish
    host = urlsplit(base).hostname or "graft.example.com"
    unsafe = f'unsafeHttpWhitelist:\n  - "{host}"\n' if base.startswith("http://") else ""
    return f"""\
# Yarn classic (1.x) reads .npmrc:
{npmrc}
# Yarn 2+ (Berry): .yarnrc.yml in the project
npmRegistryServer: "{registry}"
npmAlwaysAuth: true
npmAuthToken: "{secret}"
# or, as user:token instead of a bearer token:
# npmAuthIdent: "rootio:{secret}"
# Yarn 4 holds back versions published less than a day ago (npmMinimalAgeGate), and so your
# organization's new patched builds and private packages; let them through by name or
# exact version:
# npmPreapprovedPackages: ["@your-scope/*", "pkg@1.2.3-graft.1"]
{unsafe}
{publish}"""


def _snippets(client: Client, base: str, token: str) -> str:
    host = urlsplit(base).hostname or "graft.example.com"
    simple = f"{base}/pypi/simple/"
    legacy = f"{base}/pypi/legacy/"
    netrc = f"machine {host} login rootio password {token}"
    if client is Client.pip:
        return f"""\
# ~/.netrc (chmod 600): pip sends these credentials to {host}
{netrc}

# pip.conf (~/.config/pip/pip.conf, or /etc/pip.conf)
[global]
index-url = {simple}

# or, for one command / in CI:
#   PIP_INDEX_URL={simple} pip install -r requirements.txt
#   pip install --index-url https://rootio:{token}@{host}{urlsplit(simple).path} ...
# check the token: curl -u rootio:{token} {base}/api/whoami
"""
    if client is Client.uv:
        return f"""\
# uv.toml (~/.config/uv/uv.toml) or [tool.uv] in pyproject.toml
[[index]]
name = "graft"
url = "{simple}"
default = true

# credentials: the ~/.netrc line below, or environment variables
#   UV_INDEX_GRAFT_USERNAME=rootio UV_INDEX_GRAFT_PASSWORD={token}
{netrc}
"""
    if client is Client.poetry:
        return f"""\
poetry source add --priority=primary graft {simple}
poetry config http-basic.graft rootio {token}
# publishing patched or private builds:
poetry config repositories.graft-upload {legacy}
poetry config http-basic.graft-upload __token__ {token}
poetry publish --repository graft-upload
"""
    return f"""\
# ~/.pypirc
[distutils]
index-servers = graft

[graft]
repository = {legacy}
username = __token__
password = {token}

# twine upload --repository graft dist/*
"""


def render(
    client: Client,
    base: str,
    token: str = "$GRAFT_TOKEN",
    *,
    distro: str = "debian",
    codename: str = "bookworm",
    release: str = "3.20",
    image: str = "library/python:3.12-slim",
) -> str:
    """The configuration `client` needs to use the Graft server at `base` (no trailing slash)."""
    if client is Client.apt:
        return _apt(base, token, distro, codename)
    if client is Client.apk:
        return _apk(base, token, release)
    if client is Client.maven:
        return _maven(base, token)
    if client is Client.gradle:
        return _gradle(base)
    if client in (Client.docker, Client.containerd, Client.kubernetes):
        return _registry(client, base, token, image)
    if client in (Client.npm, Client.pnpm, Client.yarn):
        return _npm(client, base, token)
    return _snippets(client, base, token)


def netrc_line(base: str, token: str) -> str:
    """The `.netrc` line pip, uv, curl and Poetry read for this server."""
    host = urlsplit(base).hostname or "graft.example.com"
    return f"machine {host} login rootio password {token}"
