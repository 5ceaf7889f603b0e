//! containerd's CRI plugin driven as kubelet drives it, through the CRI's gRPC API
//! (`k8s-cri` over tonic): a private containerd ([`Containerd`]) whose one CRI runtime is
//! the runtime under test, a CNI network of the test's own ([`CniNetwork`]), pods in a
//! cgroup parent of their own. Dropping it stops and removes every pod through CRI (so
//! CNI DEL runs), then containerd and the network go.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_cri::v1::{
    ContainerConfig, ContainerMetadata, ContainerStatus, ContainerStatusRequest,
    CreateContainerRequest, ExecSyncRequest, ExecSyncResponse, ImageSpec, ImageStatusRequest,
    LinuxContainerConfig, LinuxContainerSecurityContext, LinuxPodSandboxConfig,
    LinuxSandboxSecurityContext, ListContainersRequest, ListPodSandboxRequest, NamespaceMode,
    NamespaceOption, PodSandboxConfig, PodSandboxMetadata, PodSandboxStatus,
    PodSandboxStatusRequest, RemoveContainerRequest, RemovePodSandboxRequest, RunPodSandboxRequest,
    StartContainerRequest, StatusRequest, StopContainerRequest, StopPodSandboxRequest,
};
use tonic::transport::{Channel, Endpoint, Uri};

/// The CRI's messages, for tests that read statuses.
pub use k8s_cri::v1 as api;

use crate::cni::CniNetwork;
use crate::containerd::{Containerd, CriPlugin};
use crate::image::{wait_until, IMAGE_REF, PAUSE_REF};
use crate::pct::PctStandin;

/// How long one CRI call may take before the test fails.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// A pod the test made: its id and the config it was made with (CreateContainer
/// needs it again).
#[derive(Debug, Clone)]
pub struct Pod {
    pub id: String,
    pub config: PodSandboxConfig,
}

/// containerd with its CRI plugin on, and a client of it.
#[derive(Debug)]
pub struct Cri {
    runtime: RuntimeServiceClient<Channel>,
    images: ImageServiceClient<Channel>,
    rt: tokio::runtime::Runtime,
    pub containerd: Containerd,
    pub network: CniNetwork,
    cgroup_parent: String,
    /// The network's conflist and the pods' log directories.
    dir: tempfile::TempDir,
}

impl Cri {
    /// containerd whose CRI runtime runs `runtime` (runc, or proxcage with
    /// `proxcage_config_text` as its config file), its CNI network and a client.
    pub fn start(runtime: &Path, proxcage_config_text: &str) -> Self {
        Cri::start_with(runtime, proxcage_config_text, Vec::new())
    }

    /// As [`Cri::start`], proxcage routed to the pct backend on `standin`.
    pub fn start_pct(standin: &PctStandin) -> Self {
        let env = vec![("PCT_STANDIN_ROOT".to_string(), standin.root.clone())];
        Cri::start_with(&crate::proxcage_bin(), &standin.proxcage_config(), env)
    }

    fn start_with(
        runtime: &Path,
        proxcage_config_text: &str,
        runtime_env: Vec<(String, PathBuf)>,
    ) -> Self {
        crate::require_root();
        let dir = tempfile::Builder::new()
            .prefix("proxcage-e2e-cri-")
            .tempdir()
            .unwrap();
        let network = CniNetwork::new(&dir.path().join("cni"));
        let cgroup_parent = format!(
            "/proxcage-e2e-cri-{}-{}",
            std::process::id(),
            crate::unique()
        );
        let plugin = CriPlugin {
            network: &network,
            cgroup_parent: &cgroup_parent,
        };
        let containerd =
            Containerd::start_with(runtime, proxcage_config_text, runtime_env, Some(plugin));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime for the CRI client");
        let socket = containerd.socket.clone();
        let channel = rt
            .block_on(Endpoint::from_static("http://[::]").connect_with_connector(
                tower::service_fn(move |_: Uri| {
                    let socket = socket.clone();
                    async move {
                        let stream = tokio::net::UnixStream::connect(socket).await?;
                        Ok::<_, std::io::Error>(TokioIo::new(stream))
                    }
                }),
            ))
            .unwrap_or_else(|e| panic!("connecting to containerd's CRI: {e}"));
        let cri = Cri {
            runtime: RuntimeServiceClient::new(channel.clone()),
            images: ImageServiceClient::new(channel),
            rt,
            containerd,
            network,
            cgroup_parent,
            dir,
        };
        cri.wait_ready();
        cri
    }

    /// Waits until CRI says the runtime and the network are ready and knows both images.
    fn wait_ready(&self) {
        let ready = wait_until(Duration::from_secs(30), || {
            let Ok(status) = self.try_call(self.runtime.clone().status(StatusRequest::default()))
            else {
                return false;
            };
            let conditions = status.status.map(|s| s.conditions).unwrap_or_default();
            conditions.len() >= 2 && conditions.iter().all(|c| c.status)
        });
        assert!(
            ready,
            "the CRI plugin did not report the runtime and the network ready\n{}",
            self.containerd.log_tail()
        );
        for image in [IMAGE_REF, PAUSE_REF] {
            let known = wait_until(Duration::from_secs(10), || {
                let request = ImageStatusRequest {
                    image: Some(image_spec(image)),
                    verbose: false,
                };
                self.try_call(self.images.clone().image_status(request))
                    .is_ok_and(|r| r.image.is_some())
            });
            assert!(
                known,
                "CRI does not know the image {image} after its import"
            );
        }
    }

    /// Runs a CRI call to its end; a call that takes over a minute fails the test.
    fn try_call<T>(
        &self,
        call: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    ) -> Result<T, tonic::Status> {
        self.rt
            .block_on(async { tokio::time::timeout(CALL_TIMEOUT, call).await })
            .unwrap_or_else(|_| panic!("a CRI call took over {CALL_TIMEOUT:?}"))
            .map(tonic::Response::into_inner)
    }

    /// As [`Cri::try_call`]; a failed call fails the test, naming `what` and showing
    /// containerd's log.
    #[track_caller]
    fn call<T>(
        &self,
        what: &str,
        call: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    ) -> T {
        self.try_call(call).unwrap_or_else(|status| {
            panic!(
                "CRI {what} failed: {:?}: {}\n{}",
                status.code(),
                status.message(),
                self.containerd.log_tail()
            )
        })
    }

    /// RunPodSandbox of a kubelet-shaped pod named `name` (its hostname too): the pod's
    /// network, its IPC, a PID namespace per container.
    #[track_caller]
    pub fn run_pod(&self, name: &str) -> Pod {
        let log_directory = self.dir.path().join("logs").join(name);
        std::fs::create_dir_all(&log_directory).unwrap();
        let config = PodSandboxConfig {
            metadata: Some(PodSandboxMetadata {
                name: name.to_string(),
                uid: format!("uid-{name}-{}", crate::unique()),
                namespace: "proxcage-e2e".to_string(),
                attempt: 0,
            }),
            hostname: name.to_string(),
            log_directory: log_directory.display().to_string(),
            linux: Some(LinuxPodSandboxConfig {
                cgroup_parent: self.cgroup_parent.clone(),
                security_context: Some(LinuxSandboxSecurityContext {
                    namespace_options: Some(kubelet_namespaces()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let request = RunPodSandboxRequest {
            config: Some(config.clone()),
            runtime_handler: String::new(),
        };
        let id = self
            .call(
                "RunPodSandbox",
                self.runtime.clone().run_pod_sandbox(request),
            )
            .pod_sandbox_id;
        Pod { id, config }
    }

    #[track_caller]
    pub fn pod_status(&self, pod: &Pod) -> PodSandboxStatus {
        let request = PodSandboxStatusRequest {
            pod_sandbox_id: pod.id.clone(),
            verbose: false,
        };
        self.call(
            "PodSandboxStatus",
            self.runtime.clone().pod_sandbox_status(request),
        )
        .status
        .expect("PodSandboxStatus without a status")
    }

    /// The pod's IP as PodSandboxStatus reports it.
    #[track_caller]
    pub fn pod_ip(&self, pod: &Pod) -> String {
        let status = self.pod_status(pod);
        status.network.map(|n| n.ip).unwrap_or_default()
    }

    /// CreateContainer in `pod` of the busybox image running `args`, kubelet-shaped
    /// (namespaces as the pod's, its log under the pod's log directory); returns its id.
    #[track_caller]
    pub fn create_container(&self, pod: &Pod, name: &str, args: &[&str]) -> String {
        let config = ContainerConfig {
            metadata: Some(ContainerMetadata {
                name: name.to_string(),
                attempt: 0,
            }),
            image: Some(image_spec(IMAGE_REF)),
            command: args.iter().map(|a| a.to_string()).collect(),
            log_path: format!("{name}.log"),
            linux: Some(LinuxContainerConfig {
                security_context: Some(LinuxContainerSecurityContext {
                    namespace_options: Some(kubelet_namespaces()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let request = CreateContainerRequest {
            pod_sandbox_id: pod.id.clone(),
            config: Some(config),
            sandbox_config: Some(pod.config.clone()),
        };
        self.call(
            "CreateContainer",
            self.runtime.clone().create_container(request),
        )
        .container_id
    }

    #[track_caller]
    pub fn start_container(&self, id: &str) {
        let request = StartContainerRequest {
            container_id: id.to_string(),
        };
        self.call(
            "StartContainer",
            self.runtime.clone().start_container(request),
        );
    }

    #[track_caller]
    pub fn container_status(&self, id: &str) -> ContainerStatus {
        let request = ContainerStatusRequest {
            container_id: id.to_string(),
            verbose: false,
        };
        self.call(
            "ContainerStatus",
            self.runtime.clone().container_status(request),
        )
        .status
        .expect("ContainerStatus without a status")
    }

    /// ExecSync of `cmd` in container `id`, with a timeout of 30 s.
    #[track_caller]
    pub fn exec_sync(&self, id: &str, cmd: &[&str]) -> ExecSyncResponse {
        let request = ExecSyncRequest {
            container_id: id.to_string(),
            cmd: cmd.iter().map(|a| a.to_string()).collect(),
            timeout: 30,
        };
        self.call("ExecSync", self.runtime.clone().exec_sync(request))
    }

    /// StopContainer: SIGTERM, SIGKILL after `timeout` seconds.
    #[track_caller]
    pub fn stop_container(&self, id: &str, timeout: i64) {
        let request = StopContainerRequest {
            container_id: id.to_string(),
            timeout,
        };
        self.call(
            "StopContainer",
            self.runtime.clone().stop_container(request),
        );
    }

    #[track_caller]
    pub fn remove_container(&self, id: &str) {
        let request = RemoveContainerRequest {
            container_id: id.to_string(),
        };
        self.call(
            "RemoveContainer",
            self.runtime.clone().remove_container(request),
        );
    }

    #[track_caller]
    pub fn stop_pod(&self, pod: &Pod) {
        self.stop_pod_id(&pod.id);
    }

    #[track_caller]
    fn stop_pod_id(&self, id: &str) {
        let request = StopPodSandboxRequest {
            pod_sandbox_id: id.to_string(),
        };
        self.call(
            "StopPodSandbox",
            self.runtime.clone().stop_pod_sandbox(request),
        );
    }

    #[track_caller]
    pub fn remove_pod(&self, pod: &Pod) {
        self.remove_pod_id(&pod.id);
    }

    #[track_caller]
    fn remove_pod_id(&self, id: &str) {
        let request = RemovePodSandboxRequest {
            pod_sandbox_id: id.to_string(),
        };
        self.call(
            "RemovePodSandbox",
            self.runtime.clone().remove_pod_sandbox(request),
        );
    }

    /// The ids of the pods CRI lists.
    #[track_caller]
    pub fn pod_ids(&self) -> Vec<String> {
        let request = ListPodSandboxRequest { filter: None };
        let pods = self.call(
            "ListPodSandbox",
            self.runtime.clone().list_pod_sandbox(request),
        );
        pods.items.into_iter().map(|p| p.id).collect()
    }

    /// The ids of the containers CRI lists.
    #[track_caller]
    pub fn container_ids(&self) -> Vec<String> {
        let request = ListContainersRequest { filter: None };
        let containers = self.call(
            "ListContainers",
            self.runtime.clone().list_containers(request),
        );
        containers.containers.into_iter().map(|c| c.id).collect()
    }

    /// Fails unless CRI, containerd and the runtime have no pod or container left and
    /// CNI DEL removed the network's rules, veths and network namespaces.
    #[track_caller]
    pub fn assert_nothing_left(&self) {
        assert_eq!(self.pod_ids(), Vec::<String>::new(), "CRI still lists pods");
        assert_eq!(
            self.container_ids(),
            Vec::<String>::new(),
            "CRI still lists containers"
        );
        self.containerd.assert_nothing_left();
        self.network.assert_clean(self.containerd.sandbox());
    }
}

impl Drop for Cri {
    fn drop(&mut self) {
        // Whatever a failed test left, removed as kubelet would: CNI DEL runs on stop.
        let pods = self
            .try_call(
                self.runtime
                    .clone()
                    .list_pod_sandbox(ListPodSandboxRequest { filter: None }),
            )
            .map(|r| r.items)
            .unwrap_or_default();
        for pod in pods {
            let id = pod.id;
            let stop = StopPodSandboxRequest {
                pod_sandbox_id: id.clone(),
            };
            let _ = self.try_call(self.runtime.clone().stop_pod_sandbox(stop));
            let remove = RemovePodSandboxRequest { pod_sandbox_id: id };
            let _ = self.try_call(self.runtime.clone().remove_pod_sandbox(remove));
        }
    }
}

fn image_spec(image: &str) -> ImageSpec {
    ImageSpec {
        image: image.to_string(),
        ..Default::default()
    }
}

/// What kubelet asks for a pod without `shareProcessNamespace` or host namespaces.
fn kubelet_namespaces() -> NamespaceOption {
    NamespaceOption {
        network: NamespaceMode::Pod as i32,
        pid: NamespaceMode::Container as i32,
        ipc: NamespaceMode::Pod as i32,
        ..Default::default()
    }
}
