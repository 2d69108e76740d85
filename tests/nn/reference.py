"""Plain, obviously correct implementations used only to check the fast ones."""
import torch


def locally_connected(x: torch.Tensor, weight: torch.Tensor, stride: int) -> torch.Tensor:
    """One einsum per output location: y[n, m, i, j] = sum_{p,q,c} w[i,j,m,p,q,c] x[n,c,i*s+p,j*s+q]."""
    Ho, Wo, M, r, _, C = weight.shape
    y = x.new_zeros(x.shape[0], M, Ho, Wo)
    for i in range(Ho):
        for j in range(Wo):
            patch = x[:, :, i * stride:i * stride + r, j * stride:j * stride + r]  # (N, C, r, r)
            y[:, :, i, j] = torch.einsum("ncpq,mpqc->nm", patch, weight[i, j])
    return y


def locally_connected_transpose(y: torch.Tensor, weight: torch.Tensor, stride: int, in_size) -> torch.Tensor:
    """x[n, c, i*s+p, j*s+q] += sum_m w[i,j,m,p,q,c] y[n,m,i,j], location by location."""
    Ho, Wo, M, r, _, C = weight.shape
    x = y.new_zeros(y.shape[0], C, *in_size)
    for i in range(Ho):
        for j in range(Wo):
            x[:, :, i * stride:i * stride + r, j * stride:j * stride + r] += torch.einsum(
                "nm,mpqc->ncpq", y[:, :, i, j], weight[i, j])
    return x
