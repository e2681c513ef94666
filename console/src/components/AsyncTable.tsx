// How a page shows what it loads: while nothing has arrived, a spinner
// naming it; on failure, the error with a retry; with nothing to show, an
// empty state naming what is empty; then the rows in a table (AsyncTable)
// or any other view (AsyncView). Tested by AsyncTable.test.tsx.
import type { ComponentChildren, JSX } from 'preact';
import { Empty, ErrorBox, Loading } from './ui';

/** AsyncState is what useAsync returns, as far as these views read it. */
export interface AsyncState<T> {
  data?: T;
  error?: string;
  reload: () => void;
}

/** AsyncView shows "Loading {what}…" until state has data, the error with a
 * retry (state.reload) when the load failed, empty when isEmpty(data), and
 * children(data) otherwise. Data already shown stays while it reloads. */
export function AsyncView<T>(props: {
  state: AsyncState<T>;
  what: string;
  empty?: ComponentChildren;
  isEmpty?: (data: T) => boolean;
  children: (data: T) => ComponentChildren;
}) {
  const { state, what, empty, isEmpty } = props;
  if (state.error) return <ErrorBox error={state.error} retry={state.reload} />;
  if (state.data == null) return <Loading what={'Loading ' + what} />;
  if (empty !== undefined && isEmpty?.(state.data)) return <Empty>{empty}</Empty>;
  return <>{props.children(state.data)}</>;
}

/** Column is a table heading: its text, or its text and a class (e.g. "num"). */
export type Column = string | { label: string; class: string };

/** AsyncTable is AsyncView for a list: empty (required: it names what is
 * empty) when the list has no rows, else a Table of row(item) each. */
export function AsyncTable<T>(props: {
  state: AsyncState<T[]>;
  what: string;
  empty: ComponentChildren;
  head: Column[];
  row: (item: T) => JSX.Element;
  testid?: string;
}) {
  return (
    <AsyncView state={props.state} what={props.what} empty={props.empty} isEmpty={(rows) => rows.length === 0}>
      {(rows) => <Table head={props.head} rows={rows} row={props.row} testid={props.testid} />}
    </AsyncView>
  );
}

/** Table is the console's table: it scrolls sideways inside its box on a narrow screen. */
export function Table<T>({ head, rows, row, testid }: { head: Column[]; rows: T[]; row: (item: T) => JSX.Element; testid?: string }) {
  return (
    <div class="table-wrap">
      <table class="table" data-testid={testid}>
        <thead>
          <tr>
            {head.map((c) => (typeof c === 'string' ? <th>{c}</th> : <th class={c.class}>{c.label}</th>))}
          </tr>
        </thead>
        <tbody>{rows.map(row)}</tbody>
      </table>
    </div>
  );
}
