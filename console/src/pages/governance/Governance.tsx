// Governance: the audit log, AI decisions, compliance reports, users and
// API tokens, one page each at the path of the API resource it shows
// (router.ts governancePaths), with a tab for each the role may use.
import type { JSX } from 'preact';
import { useEffect } from 'preact/hooks';
import { getPermissions } from '../../api';
import { governancePaths, navigate, type GovernanceTab } from '../../router';
import { can } from '../../session';
import { Link } from '../../components/ui';
import { AuditPage } from './Audit';
import { AIDecisionsPage } from './AIDecisions';
import { ReportsPage } from './Reports';
import { UsersPage } from './Users';
import { TokensPage } from './Tokens';

interface Tab {
  tab: GovernanceTab;
  label: string;
  resource: string;
  action: string;
  page: () => JSX.Element;
}

const tabs: Tab[] = [
  { tab: 'audit', label: 'Audit', resource: 'audit', action: 'read', page: AuditPage },
  { tab: 'ai_decisions', label: 'AI decisions', resource: 'ai_decisions', action: 'read', page: AIDecisionsPage },
  { tab: 'reports', label: 'Reports', resource: 'reports', action: 'create', page: ReportsPage },
  { tab: 'users', label: 'Users', resource: 'users', action: 'read', page: UsersPage },
  { tab: 'tokens', label: 'API tokens', resource: 'tokens', action: 'read', page: TokensPage },
];

/** GovernancePage shows the page of tab, or the first the role may use
 * (and its path) when the role may not use tab. */
export function GovernancePage({ tab }: { tab: string }) {
  const perms = getPermissions();
  const shown = tabs.filter((t) => can(perms, t.resource, t.action));
  const active = shown.find((t) => t.tab === tab) ?? shown[0] ?? tabs[0];
  useEffect(() => {
    if (active.tab !== tab) navigate(governancePaths[active.tab], true);
  }, [tab, active.tab]);
  const Page = active.page;
  return (
    <section>
      <div class="page-head">
        <h1>Governance</h1>
      </div>
      <nav class="tabs" aria-label="Governance">
        {shown.map((t) => (
          <Link href={governancePaths[t.tab]} class={t === active ? 'tab active' : 'tab'} data-testid={'tab-' + t.tab}>
            {t.label}
          </Link>
        ))}
      </nav>
      <Page />
    </section>
  );
}
