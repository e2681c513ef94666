package hub

import (
	"flag"
	"fmt"
	"strconv"

	"github.com/redforge/controltower/hub/backup"
)

// BackupConfig is the backup part of Config: where archives go, when they
// are made and verified, how many are kept, their encryption, and the Git
// remote of the flows mirror.
type BackupConfig struct {
	// BackupDest is a directory, file:///path or
	// s3://bucket/prefix?endpoint=host:port (credentials from
	// REDFORGE_BACKUP_S3_ACCESS_KEY/_SECRET_KEY or their _FILE variants).
	// Empty: <data-dir>/backups.
	BackupDest string `json:"backup_dest"`
	// BackupSchedule is a cron schedule (UTC) on which the leader makes a
	// backup and prunes; empty: none.
	BackupSchedule string `json:"backup_schedule"`
	// BackupVerifySchedule is a cron schedule on which the leader verifies
	// the newest backup (checksums plus a scratch restore): the weekly
	// restore test; empty: none.
	BackupVerifySchedule string `json:"backup_verify_schedule"`
	// BackupKeepDaily and BackupKeepMonthly are the retention.
	BackupKeepDaily   int `json:"backup_keep_daily"`
	BackupKeepMonthly int `json:"backup_keep_monthly"`
	// BackupAgeRecipients is a file of age recipients (age1…, one a line)
	// or a comma-separated list of them; archives are then encrypted.
	BackupAgeRecipients string `json:"backup_age_recipients"`
	// BackupAgeIdentity is an age identity file that opens the archives
	// (for verify).
	BackupAgeIdentity string `json:"backup_age_identity"`
	// BackupIncludeKey puts this hub's secrets.key into encrypted archives.
	BackupIncludeKey bool `json:"backup_include_key"`
	// BackupVerifyStore is an empty PostgreSQL database verify restores a
	// PostgreSQL store's archive into; empty: a database created (and
	// dropped) on the store's server.
	BackupVerifyStore string `json:"backup_verify_store"`
	// FlowsGitRemote is the Git remote the leader pushes the flows mirror
	// to (empty: the mirror is kept in <data-dir>/flows.git only).
	FlowsGitRemote string `json:"flows_git_remote"`
	// FlowsGit turns the flows mirror off when false.
	FlowsGit bool `json:"flows_git"`
	// scratch marks a hub that backup verification starts on a restored
	// copy: no runtimes, no peers, no schedules.
	scratch bool
}

// defaultBackupConfig is the backup part of DefaultConfig.
func defaultBackupConfig() BackupConfig {
	return BackupConfig{BackupKeepDaily: backup.DefaultKeepDaily, BackupKeepMonthly: backup.DefaultKeepMonthly, FlowsGit: true}
}

// backupFlags registers the backup flags on fs; apply copies the set ones
// (and REDFORGE_* env) into cfg after the config file was read.
func backupFlags(fs *flag.FlagSet) func(cfg *Config, set map[string]bool, getenv func(string) string) error {
	d := defaultBackupConfig()
	strs := map[string]*string{
		"backup-dest":            fs.String("backup-dest", "", "where backups go: a directory, file:///path or s3://bucket/prefix?endpoint=host:port (default <data-dir>/backups) (env REDFORGE_BACKUP_DEST)"),
		"backup-schedule":        fs.String("backup-schedule", "", "cron schedule (UTC) of backups made by the leader, e.g. \"0 2 * * *\" or @daily (env REDFORGE_BACKUP_SCHEDULE)"),
		"backup-verify-schedule": fs.String("backup-verify-schedule", "", "cron schedule of the restore test of the newest backup, e.g. @weekly (env REDFORGE_BACKUP_VERIFY_SCHEDULE)"),
		"backup-age-recipients":  fs.String("backup-age-recipients", "", "encrypt backups to these age recipients: a file of them or age1…,age1… (env REDFORGE_BACKUP_AGE_RECIPIENTS)"),
		"backup-age-identity":    fs.String("backup-age-identity", "", "age identity file that opens encrypted backups, for verify (env REDFORGE_BACKUP_AGE_IDENTITY)"),
		"backup-verify-store":    fs.String("backup-verify-store", "", "empty PostgreSQL database verify restores into (default: one created and dropped on the store's server) (env REDFORGE_BACKUP_VERIFY_STORE)"),
		"flows-git-remote":       fs.String("flows-git-remote", "", "Git remote the leader pushes every deployed flows version to (env REDFORGE_FLOWS_GIT_REMOTE)"),
	}
	ints := map[string]*int{
		"backup-keep-daily":   fs.Int("backup-keep-daily", d.BackupKeepDaily, "keep the newest backup of this many days (env REDFORGE_BACKUP_KEEP_DAILY)"),
		"backup-keep-monthly": fs.Int("backup-keep-monthly", d.BackupKeepMonthly, "keep the newest backup of this many months (env REDFORGE_BACKUP_KEEP_MONTHLY)"),
	}
	bools := map[string]*bool{
		"backup-include-key": fs.Bool("backup-include-key", false, "put the secrets key into encrypted backups (needs --backup-age-recipients) (env REDFORGE_BACKUP_INCLUDE_KEY)"),
		"flows-git":          fs.Bool("flows-git", d.FlowsGit, "keep every deployed flows version in a Git repository (env REDFORGE_FLOWS_GIT)"),
	}
	return func(cfg *Config, set map[string]bool, getenv func(string) string) error {
		c := &cfg.BackupConfig
		sp := map[string]*string{"backup-dest": &c.BackupDest, "backup-schedule": &c.BackupSchedule, "backup-verify-schedule": &c.BackupVerifySchedule,
			"backup-age-recipients": &c.BackupAgeRecipients, "backup-age-identity": &c.BackupAgeIdentity, "backup-verify-store": &c.BackupVerifyStore,
			"flows-git-remote": &c.FlowsGitRemote}
		for name, ptr := range sp {
			if v := getenv(EnvName(name)); v != "" && !set[name] {
				*ptr = v
			}
			if set[name] {
				*ptr = *strs[name]
			}
		}
		for name, ptr := range map[string]*int{"backup-keep-daily": &c.BackupKeepDaily, "backup-keep-monthly": &c.BackupKeepMonthly} {
			if v := getenv(EnvName(name)); v != "" && !set[name] {
				n, err := strconv.Atoi(v)
				if err != nil {
					return fmt.Errorf("%s: %q is not a number", EnvName(name), v)
				}
				*ptr = n
			}
			if set[name] {
				*ptr = *ints[name]
			}
		}
		for name, ptr := range map[string]*bool{"backup-include-key": &c.BackupIncludeKey, "flows-git": &c.FlowsGit} {
			if v := getenv(EnvName(name)); v != "" && !set[name] {
				b, err := strconv.ParseBool(v)
				if err != nil {
					return fmt.Errorf("%s: %q is not true or false", EnvName(name), v)
				}
				*ptr = b
			}
			if set[name] {
				*ptr = *bools[name]
			}
		}
		return nil
	}
}

// validateBackup returns the backup settings' problems, by field.
func (c Config) validateBackup() []error {
	var errs []error
	bad := func(field, format string, a ...any) {
		errs = append(errs, &FieldError{Field: field, Message: fmt.Sprintf(format, a...)})
	}
	if _, err := backup.ParseSchedule(c.BackupSchedule); err != nil {
		bad("backup-schedule", "%v", err)
	}
	if _, err := backup.ParseSchedule(c.BackupVerifySchedule); err != nil {
		bad("backup-verify-schedule", "%v", err)
	}
	if c.BackupKeepDaily < 0 {
		bad("backup-keep-daily", "must not be negative")
	}
	if c.BackupKeepMonthly < 0 {
		bad("backup-keep-monthly", "must not be negative")
	}
	if c.BackupDest != "" {
		if _, err := backup.ParseDestination(c.BackupDest, func(string) string { return "x" }); err != nil {
			bad("backup-dest", "%v", err)
		}
	}
	if c.BackupAgeRecipients != "" {
		if _, err := backup.ParseRecipients(c.BackupAgeRecipients); err != nil {
			bad("backup-age-recipients", "%v", err)
		}
	}
	if c.BackupIncludeKey && c.BackupAgeRecipients == "" {
		bad("backup-include-key", "needs --backup-age-recipients: the secrets key never goes into an archive in clear")
	}
	if c.BackupIncludeKey && c.ClusterSecret != "" {
		bad("backup-include-key", "this hub's key derives from REDFORGE_CLUSTER_SECRET; keep that secret apart from the backups instead")
	}
	return errs
}
