// Key Vault holding the four keys the app signs and verifies with. Access is by Azure RBAC
// only; the Function App reads the secrets through Key Vault references as its user-assigned
// identity. The values come from the azd environment (generated once by the preprovision
// hook), so a re-provision writes the same values back and never rotates them on its own.

@description('Name of the vault (3-24 letters, digits and dashes).')
@minLength(3)
@maxLength(24)
param name string

@description('Region of the vault.')
param location string

@description('Tags put on the vault.')
param tags object

@description('Days a deleted vault or secret can be recovered.')
@minValue(7)
@maxValue(90)
param softDeleteRetentionInDays int

@description('Purge protection: a deleted vault cannot be purged before its retention ends (cannot be turned off again).')
param enablePurgeProtection bool

@description('Log Analytics workspace the diagnostic setting sends to.')
param workspaceId string

@secure()
param accessKey string

@secure()
param secondaryAccessKey string

@secure()
param tokenSigningKey string

@secure()
param callbackSigningKey string

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  // checkov:skip=CKV_AZURE_109:Key Vault references are resolved over the vault's public endpoint (the app has no virtual network here); RBAC authorization admits only the app's identity and the deployer.
  // checkov:skip=CKV_AZURE_189:Same reason as CKV_AZURE_109.
  // checkov:skip=CKV_AZURE_110:Purge protection is a parameter (on by default); it cannot be undone, and throwaway azd environments may turn it off so azd down --purge can free the name.
  // checkov:skip=CKV_AZURE_42:Soft delete is always on; purge protection is the parameter explained for CKV_AZURE_110.
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: tenant().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: softDeleteRetentionInDays
    // ARM refuses an explicit false: the property is left out instead.
    enablePurgeProtection: enablePurgeProtection ? true : null
    enabledForDeployment: false
    enabledForDiskEncryption: false
    enabledForTemplateDeployment: false
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
  }
}

// One secret per key. No expiry date: a reference to an expired secret stops resolving and the
// app would stop starting on that day; rotation is a documented manual step (README, Deploy to Azure).
resource accessKeySecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  // checkov:skip=CKV_AZURE_41:No expiry: an expired secret would stop the app; rotation is manual and documented.
  parent: vault
  name: 'anteroom-access-key'
  properties: {
    value: accessKey
    contentType: 'base64 HMAC-SHA256 key'
  }
}

resource secondaryAccessKeySecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  // checkov:skip=CKV_AZURE_41:No expiry: an expired secret would stop the app; rotation is manual and documented.
  parent: vault
  name: 'anteroom-secondary-access-key'
  properties: {
    value: secondaryAccessKey
    contentType: 'base64 HMAC-SHA256 key'
  }
}

resource tokenSigningKeySecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  // checkov:skip=CKV_AZURE_41:No expiry: an expired secret would stop the app; rotation is manual and documented.
  parent: vault
  name: 'anteroom-token-signing-key'
  properties: {
    value: tokenSigningKey
    contentType: 'base64 HS256 key'
  }
}

resource callbackSigningKeySecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  // checkov:skip=CKV_AZURE_41:No expiry: an expired secret would stop the app; rotation is manual and documented.
  parent: vault
  name: 'anteroom-callback-signing-key'
  properties: {
    value: callbackSigningKey
    contentType: 'base64 of an RSA private key PEM'
  }
}

resource diagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: vault
  properties: {
    workspaceId: workspaceId
    logs: [
      {
        categoryGroup: 'audit'
        enabled: true
      }
    ]
    metrics: [
      {
        category: 'AllMetrics'
        enabled: true
      }
    ]
  }
}

output id string = vault.id
output name string = vault.name
// Version-less URIs: the app follows a new secret version when App Service refreshes references.
output accessKeyUri string = accessKeySecret.properties.secretUri
output secondaryAccessKeyUri string = secondaryAccessKeySecret.properties.secretUri
output tokenSigningKeyUri string = tokenSigningKeySecret.properties.secretUri
output callbackSigningKeyUri string = callbackSigningKeySecret.properties.secretUri
