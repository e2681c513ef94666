// @vitest-environment happy-dom
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { render } from 'preact';
import { act } from 'preact/test-utils';
import { AsyncTable, AsyncView, type AsyncState } from './AsyncTable';
import { useAsync } from './ui';

interface Row {
  id: number;
  name: string;
}

let root: HTMLElement;
beforeEach(() => {
  root = document.createElement('div');
  document.body.appendChild(root);
});
afterEach(() => {
  render(null, root);
  root.remove();
});

function table(state: AsyncState<Row[]>) {
  act(() => {
    render(
      <AsyncTable
        state={state}
        what="widgets"
        empty="No widgets yet."
        testid="widgets"
        head={['Id', { label: 'Name', class: 'num' }, '']}
        row={(r) => (
          <tr data-id={r.id}>
            <td>{r.id}</td>
            <td>{r.name}</td>
            <td />
          </tr>
        )}
      />,
      root,
    );
  });
}

const shown = () => ({
  loading: root.querySelector('.state-loading')?.textContent?.trim(),
  // The error's text, without its Retry button's.
  error: root.querySelector('.state-error')?.textContent?.replace(/Retry$/, '').trim(),
  empty: root.querySelector('.state-empty')?.textContent?.trim(),
  table: !!root.querySelector('table[data-testid=widgets]'),
});

describe('AsyncTable', () => {
  it('names what loads until the data arrives', () => {
    table({ reload: () => {} });
    expect(shown()).toEqual({ loading: 'Loading widgets…', error: undefined, empty: undefined, table: false });
    expect(root.querySelector('[role=status]')).not.toBeNull();
  });

  it('shows the error with a retry that reloads', () => {
    const reload = vi.fn();
    table({ error: 'the hub said no', reload });
    expect(shown()).toEqual({ loading: undefined, error: 'Error: the hub said no', empty: undefined, table: false });
    expect(root.querySelector('[role=alert]')).not.toBeNull();
    const retry = root.querySelector<HTMLButtonElement>('.state-error button')!;
    expect(retry.textContent).toBe('Retry');
    act(() => retry.click());
    expect(reload).toHaveBeenCalledTimes(1);
  });

  it('names what is empty when there are no rows', () => {
    table({ data: [], reload: () => {} });
    expect(shown()).toEqual({ loading: undefined, error: undefined, empty: 'No widgets yet.', table: false });
  });

  it('shows the rows in a table under its headings', () => {
    table({ data: [{ id: 1, name: 'one' }, { id: 2, name: 'two' }], reload: () => {} });
    expect(shown()).toEqual({ loading: undefined, error: undefined, empty: undefined, table: true });
    const heads = [...root.querySelectorAll('thead th')].map((th) => [th.textContent, th.getAttribute('class')]);
    expect(heads).toEqual([['Id', null], ['Name', 'num'], ['', null]]);
    const rows = [...root.querySelectorAll('tbody tr')].map((tr) => [tr.getAttribute('data-id'), tr.textContent]);
    expect(rows).toEqual([['1', '1one'], ['2', '2two']]);
    expect(root.querySelector('.table-wrap > table.table')).not.toBeNull();
  });

  it('keeps the rows shown while they reload', () => {
    table({ data: [{ id: 1, name: 'one' }], loading: true, reload: () => {} } as AsyncState<Row[]>);
    expect(shown().table).toBe(true);
    expect(shown().loading).toBeUndefined();
  });
});

describe('AsyncView', () => {
  it('shows any view, and no empty state unless asked for one', () => {
    act(() => {
      render(
        <AsyncView state={{ data: { total: 0 }, reload: () => {} }} what="totals">
          {(d) => <p class="total">{d.total} in all</p>}
        </AsyncView>,
        root,
      );
    });
    expect(root.querySelector('.total')?.textContent).toBe('0 in all');
    act(() => {
      render(
        <AsyncView state={{ data: { total: 0 }, reload: () => {} }} what="totals" empty="Nothing counted." isEmpty={(d) => d.total === 0}>
          {(d) => <p class="total">{d.total} in all</p>}
        </AsyncView>,
        root,
      );
    });
    expect(root.querySelector('.total')).toBeNull();
    expect(root.querySelector('.state-empty')?.textContent).toBe('Nothing counted.');
  });

  it('goes from loading to the error to the rows with useAsync when the retry succeeds', async () => {
    let calls = 0;
    const load = () => (++calls === 1 ? Promise.reject(new Error('connection refused')) : Promise.resolve([{ id: 7, name: 'seven' }]));
    function Page() {
      const state = useAsync(load, []);
      return <AsyncTable state={state} what="widgets" empty="No widgets yet." testid="widgets" head={['Id', 'Name']} row={(r) => <tr><td>{r.id}</td><td>{r.name}</td></tr>} />;
    }
    act(() => render(<Page />, root));
    expect(shown().loading).toBe('Loading widgets…');
    await act(async () => {});
    expect(shown().error).toBe('Error: connection refused');
    await act(async () => root.querySelector<HTMLButtonElement>('.state-error button')!.click());
    await act(async () => {});
    expect(shown()).toEqual({ loading: undefined, error: undefined, empty: undefined, table: true });
    expect(root.querySelector('tbody')?.textContent).toBe('7seven');
    expect(calls).toBe(2);
  });
});
