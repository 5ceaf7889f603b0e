//! A backend record that does not parse (truncated, overwritten): the CT it named is
//! found again by its description (this container's id and this root's token), so the
//! container can still be deleted, and `health --repair` can write the record again.

use super::*;

impl Pct {
    /// The CTs on the node that this root made for `id`, found by their descriptions.
    pub(crate) fn cts_of(
        &self,
        id: &ContainerId,
    ) -> Result<Vec<(crate::parse::ListEntry, identity::Seen)>> {
        let token = identity::read_token(&self.root)?;
        let mut out = Vec::new();
        for entry in self.tools.list().map_err(Error::from)? {
            let seen = identity::read(&self.tools, &self.pve_dir, entry.vmid)?;
            if identity::judge(seen.as_ref(), id, token.as_deref()) == Proof::Ours {
                out.extend(seen.map(|seen| (entry, seen)));
            }
        }
        Ok(out)
    }

    /// Whether the CT's init was released (by `start`): until then it waits on the exec
    /// FIFO, alone in its pid namespace.
    fn released(&self, vmid: Vmid) -> bool {
        match self.tools.init_pid(vmid) {
            Ok(Some(init)) => process::pids_in_pid_namespace_of(init).is_ok_and(|p| p.len() > 1),
            _ => false,
        }
    }

    /// `delete` of a container whose backend record does not parse: its CTs (found by
    /// their descriptions) are stopped and destroyed, then the record and the files go.
    /// The template goes too unless another container uses it (the description names it).
    pub(super) fn delete_unreadable(&self, id: &ContainerId, force: bool) -> Result<()> {
        let cts = self.cts_of(id)?;
        if !force && cts.iter().any(|(ct, _)| ct.status == "running") {
            return Err(Error::Conflict {
                id: id.clone(),
                message: "cannot delete a running container: stop it first, or use --force".into(),
            });
        }
        for (ct, _) in &cts {
            let _destroying = attach::destroying(&self.root, ct.vmid, id)?;
            if ct.status == "running" {
                match self.tools.stop(ct.vmid) {
                    Ok(()) => {}
                    Err(e) if matches!(e.pct(), Some(PctError::NotRunning { .. })) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            self.destroy_ct(ct.vmid)?;
        }
        let path = self.record_path(id);
        fs::remove_file(&path).map_err(io_error("cannot remove", &path))?;
        let token = self.token();
        for template in cts.iter().filter_map(|(_, seen)| seen.template.as_deref()) {
            self.forget_template(id, &token, template);
        }
        let _ = staging::remove_files_dir(&self.files_dir_for(&token, id));
        Ok(())
    }

    /// Writes the record of `id` again from its CT: the VMID, whether it was started, its
    /// monitor, the owner of its process file; `bundle` and
    /// `created` from proxcage's record, the template from the description. Its later
    /// hooks (startContainer, poststart, poststop) are not known any more.
    /// `None` when not exactly one CT of the node was made for `id` by this root.
    pub(crate) fn rebuild_record(
        &self,
        id: &ContainerId,
        bundle: &Path,
        created: &str,
        monitor: Option<i32>,
    ) -> Result<Option<Vmid>> {
        let cts = self.cts_of(id)?;
        let [(ct, seen)] = cts.as_slice() else {
            return Ok(None);
        };
        // Its files are this root's own, or, for a container made before roots had
        // their own, `<files_dir>/<id>`.
        let files = [
            self.files_dir_for(&self.token(), id),
            self.files_root.join(id.as_str()),
        ]
        .into_iter()
        .find(|dir| dir.join("process").exists())
        .unwrap_or_else(|| self.files_dir_for(&self.token(), id));
        let owner = {
            use std::os::unix::fs::MetadataExt;
            fs::metadata(files.join("process"))
                .ok()
                .map(|m| (m.uid(), m.gid()))
        };
        let loaded = Bundle::load(bundle).ok();
        let record = CtRecord {
            vmid: ct.vmid,
            template: seen.template.clone().unwrap_or_default(),
            started: self.released(ct.vmid),
            bundle: bundle.to_path_buf(),
            rootfs: loaded
                .as_ref()
                .map(|b| b.rootfs().to_path_buf())
                .unwrap_or_else(|| bundle.join("rootfs")),
            created: created.to_string(),
            annotations: loaded.map(|b| b.annotations()).unwrap_or_default(),
            monitor,
            owner,
            hooks: LaterHooks::default(),
            // A sandbox's network namespace and keeper are not known any more: its
            // interfaces stay in the CT until it is deleted.
            sandbox_netns: None,
            keeper: None,
            destroying: false,
            files_dir: Some(files),
            pod_share: None,
        };
        self.save(id, &record)?;
        Ok(Some(ct.vmid))
    }
}
