//! The accelerator QEMU runs guests with: a host setting `kvm | tcg | auto`.
//!
//! `auto` picks KVM only when the CPU has real hardware virtualisation: `vmx` or `svm` among
//! the flags of `/proc/cpuinfo`, or `kvm_intel` / `kvm_amd` loaded (`/proc/modules`). An
//! openable `/dev/kvm` is not enough: a nested PVM backend provides one that cannot run a
//! stock guest kernel (see the host platform notes), and QMP `query-kvm` reports it enabled.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// What the operator asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccelSetting {
    Kvm,
    Tcg,
    #[default]
    Auto,
}

impl FromStr for AccelSetting {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "kvm" => Ok(AccelSetting::Kvm),
            "tcg" => Ok(AccelSetting::Tcg),
            "auto" | "" => Ok(AccelSetting::Auto),
            other => Err(format!("accelerator {other:?} is not one of kvm, tcg, auto")),
        }
    }
}

/// What guests actually run with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Accelerator {
    Kvm,
    Tcg,
}

impl Accelerator {
    pub fn as_str(self) -> &'static str {
        match self {
            Accelerator::Kvm => "kvm",
            Accelerator::Tcg => "tcg",
        }
    }

    /// The `-accel` and `-cpu` arguments.
    pub fn qemu_args(self) -> Vec<String> {
        let v: [&str; 4] = match self {
            Accelerator::Kvm => ["-accel", "kvm", "-cpu", "host"],
            // tb-size=32 keeps the translation cache (and so RSS) small.
            Accelerator::Tcg => ["-accel", "tcg,thread=multi,tb-size=32", "-cpu", "max"],
        };
        v.iter().map(|s| s.to_string()).collect()
    }
}

impl fmt::Display for Accelerator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether the CPU offers hardware virtualisation, from `/proc/cpuinfo` and `/proc/modules`.
pub fn hardware_virt(cpuinfo: &str, modules: &str) -> bool {
    let flags = cpuinfo
        .lines()
        .filter(|l| l.starts_with("flags"))
        .filter_map(|l| l.split_once(':').map(|(_, v)| v))
        .any(|v| v.split_whitespace().any(|f| f == "vmx" || f == "svm"));
    let module = modules.lines().any(|l| matches!(l.split_whitespace().next(), Some("kvm_intel" | "kvm_amd")));
    flags || module
}

/// The accelerator for `setting` given the probe texts.
pub fn choose(setting: AccelSetting, cpuinfo: &str, modules: &str) -> Accelerator {
    match setting {
        AccelSetting::Kvm => Accelerator::Kvm,
        AccelSetting::Tcg => Accelerator::Tcg,
        AccelSetting::Auto if hardware_virt(cpuinfo, modules) => Accelerator::Kvm,
        AccelSetting::Auto => Accelerator::Tcg,
    }
}

/// Probes this machine.
pub fn detect(setting: AccelSetting) -> Accelerator {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let modules = std::fs::read_to_string("/proc/modules").unwrap_or_default();
    choose(setting, &cpuinfo, &modules)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NO_VIRT: &str = "processor\t: 0\nflags\t\t: fpu vme sse2 hypervisor\n";
    const VMX: &str = "processor\t: 0\nflags\t\t: fpu vmx sse2\n";
    const SVM: &str = "flags\t\t: fpu svm\n";

    #[test]
    fn auto_needs_real_hardware_virtualisation() {
        assert_eq!(choose(AccelSetting::Auto, NO_VIRT, ""), Accelerator::Tcg);
        // /dev/kvm backed by kvm_pvm does not count.
        assert_eq!(choose(AccelSetting::Auto, NO_VIRT, "kvm_pvm 100 0 - Live\nkvm 1 1 kvm_pvm\n"), Accelerator::Tcg);
        assert_eq!(choose(AccelSetting::Auto, VMX, ""), Accelerator::Kvm);
        assert_eq!(choose(AccelSetting::Auto, SVM, ""), Accelerator::Kvm);
        assert_eq!(choose(AccelSetting::Auto, NO_VIRT, "kvm_amd 1 0 - Live\n"), Accelerator::Kvm);
        // "vmxnet" is not vmx.
        assert_eq!(choose(AccelSetting::Auto, "flags : vmxnet\n", ""), Accelerator::Tcg);
    }

    #[test]
    fn explicit_settings_win_and_parse() {
        assert_eq!(choose(AccelSetting::Kvm, NO_VIRT, ""), Accelerator::Kvm);
        assert_eq!(choose(AccelSetting::Tcg, VMX, ""), Accelerator::Tcg);
        assert_eq!("auto".parse::<AccelSetting>(), Ok(AccelSetting::Auto));
        assert!("hvf".parse::<AccelSetting>().is_err());
        assert_eq!(Accelerator::Tcg.qemu_args()[1], "tcg,thread=multi,tb-size=32");
        assert_eq!(Accelerator::Kvm.qemu_args(), ["-accel", "kvm", "-cpu", "host"]);
    }
}
